rule MAL_WbRtfObj_Package_Rtf {
    meta:
        id = "6cac0e32-fb22-5cb5-b949-c6fd54f388cc"
        fingerprint = "c6eea5f4a589471b03824a38f1fe2c7afdd1ccaeb9a16d5fc002c46b6a143b0f"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "TESTING"
        author = "Signature Team"
        description = "RTF embedding an OLE Package object whose VBScript creates WScript.Shell"
        category = "MAL"
        family = "WbRtfObj"
        hash = "af013340dc61182a5aa7991656b56d377dd838c3f243bc1f9360b9286339e033"
        source = "af013340dc61182a5aa7991656b56d377dd838c3f243bc1f9360b9286339e033"
    strings:
        $objdata = "\\objdata"
        $package = "\\objclass Package"
        // hex-encoded inside \objdata: "WBDEMO-RTFVBS" and "WScript.Shell"
        $marker = "574244454d4f2d525446564253" nocase
        $wsh = "575363726970742e5368656c6c" nocase
    condition:
        uint32(0) == 0x74725C7B and filesize < 10MB and $objdata and ($marker or ($package and $wsh))
}
