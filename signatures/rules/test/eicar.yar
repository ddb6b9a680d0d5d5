rule TEST_EICAR_TestFile_Plain {
    meta:
        id = "be4d00d2-24be-54d2-8c05-df61ca7543f8"
        fingerprint = "217c17f20bdcf63435a3f812a433ed2b69a1b1859a77845a7d530735c972bc59"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "The EICAR anti-virus test file as a file of its own (68 bytes, optional trailing whitespace)"
        category = "TEST"
        family = "EICAR"
        hash = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
        source = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        filesize < 128 and $eicar at 0
}

rule TEST_EICAR_Zip_Crc {
    meta:
        id = "4b32571a-979f-5f09-a1e4-30c945c036fa"
        fingerprint = "45426d299d177acd0337918232d1f87d4904bd3e9d368669b5438fcb9a69df12"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "A zip member with the EICAR file's CRC-32 and size: found without unpacking, even when the zip is encrypted"
        category = "TEST"
        family = "EICAR"
        hash = "9014a1b841854d0e1934ab9b984e306dd81a164c27f6aef2456febac1760d45b"
        hash = "6544affa29908009eb9963da7fcef4090347574b0d05b8a684da6fa6435d1489"
        source = "9014a1b841854d0e1934ab9b984e306dd81a164c27f6aef2456febac1760d45b"
    strings:
        // local file header / central directory entry: CRC-32 3CCF5168, uncompressed size 68
        $local = { 50 4B 03 04 [10] 3C CF 51 68 [4] 44 00 00 00 }
        $central = { 50 4B 01 02 [12] 3C CF 51 68 [4] 44 00 00 00 }
    condition:
        uint32(0) == 0x04034B50 and filesize < 20MB and any of them
}
