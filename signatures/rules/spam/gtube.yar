rule SPAM_GTUBE_TestString {
    meta:
        id = "155849df-4033-577c-b0bf-d0989264f75d"
        fingerprint = "dc245aba657b57ef3be4377d0360847821d96a8351e36b75becdbe2facdb6fd3"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "The GTUBE spam test string, in a message or on its own"
        category = "SPAM"
        family = "GTUBE"
        hash = "4418994365912e23b756ec7f14960f1a89230e44e6acb74de055db7c092f8b9c"
        hash = "ed2e40205b7b7c731357e29539642cdea7acedeaf96a686f275db0ad6923c316"
        source = "4418994365912e23b756ec7f14960f1a89230e44e6acb74de055db7c092f8b9c"
    strings:
        $gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    condition:
        filesize < 10MB and $gtube
}
