import "pe"

rule MAL_WbLoader_Config_Overlay {
    meta:
        id = "85e7c35d-2c6f-509a-bde7-1ea720a50ede"
        fingerprint = "71ab87e67136571162d0d2a6f11a7e081872a6b099ade77f5c92af2257631f0b"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "PE loader carrying its C2 configuration as an overlay after the last section"
        category = "MAL"
        family = "WbLoader"
        hash = "ba5ed6a092691661554de7dcc86325545da609b80b7b8ea84cf24472f1230088"
        source = "ba5ed6a092691661554de7dcc86325545da609b80b7b8ea84cf24472f1230088"
    strings:
        $cfg = "WBDEMO-LOADER-CFG|c2="
        $sleep = "|sleep="
    condition:
        uint16(0) == 0x5A4D and filesize < 5MB and pe.overlay.size > 0
        and $cfg at pe.overlay.offset and $sleep
}
