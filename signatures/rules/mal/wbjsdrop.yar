rule MAL_WbJsDrop_Downloader_Js {
    meta:
        id = "fcfb206e-5c9e-57d5-a556-0666b476fe51"
        fingerprint = "59a5de0c2a76cfd19568d3c43acb786c11e3271c513aa9b2f5a8dcacbf324808"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "JScript downloader that builds WScript.Shell, MSXML2.XMLHTTP and ADODB.Stream objects"
        category = "MAL"
        family = "WbJsDrop"
        hash = "d6f12a9324e662e754a6c24c0d72c0aa773a00ebc195e6c7b79f98a7378d6f04"
        source = "d6f12a9324e662e754a6c24c0d72c0aa773a00ebc195e6c7b79f98a7378d6f04"
    strings:
        $activex = "ActiveXObject"
        $marker = "WBDEMO-JSDROP"
        $s1 = "WScript.Shell"
        $s2 = "MSXML2.XMLHTTP" nocase
        $s3 = "ADODB.Stream" nocase
        $s4 = "ExpandEnvironmentStrings"
    condition:
        filesize < 1MB and $activex and ($marker or 3 of ($s*))
}
