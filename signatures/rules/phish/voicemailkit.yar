rule PHISH_VoicemailKit_Html_Form {
    meta:
        id = "35944cd3-250f-5c62-8868-ffebafbca405"
        fingerprint = "9d7eb65395fa9e1a7cc38c5030f1885ee930d8b1388bb6d77f234ff07dc6ae26"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "Voicemail-themed credential phishing page of the wbkit kit posting to a look-alike Microsoft host"
        category = "PHISH"
        family = "VoicemailKit"
        hash = "4456d5122e76302f64834b3d36e57a4bf1efb42a424a7455e6b1daeda715bd6c"
        source = "4456d5122e76302f64834b3d36e57a4bf1efb42a424a7455e6b1daeda715bd6c"
    strings:
        $form = "<form" ascii nocase
        $passwd = "name=\"passwd\"" ascii nocase
        $kit = "wbkit-phish-7" ascii
        $host = "login-micros0ft-verify.example" ascii nocase
    condition:
        filesize < 2MB and $form and $passwd and ($kit or $host)
}
