rule MAL_WbPdfJs_OpenAction_Pdf {
    meta:
        id = "a8316ccb-bc34-5509-b9b1-bcf2235a6ea6"
        fingerprint = "63dc81fdfcf1fce6be45ffc636f067f04ea812af099d54a55b60fb7ddfc1096f"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "PDF whose OpenAction runs JavaScript that opens a download URL"
        category = "MAL"
        family = "WbPdfJs"
        hash = "51f35cb0debae9915771ed36feac52df8716c926a60ceb893fe1daf4fe74ce1e"
        source = "51f35cb0debae9915771ed36feac52df8716c926a60ceb893fe1daf4fe74ce1e"
    strings:
        $open = "/OpenAction"
        $js = "/JavaScript"
        $launch = "app.launchURL"
        $marker = "WBDEMO-PDFJS"
    condition:
        uint32(0) == 0x46445025 and filesize < 10MB and $open and $js and ($marker or $launch)
}
