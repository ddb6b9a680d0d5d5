rule MAL_WbMacro_AutoOpen_Doc {
    meta:
        id = "c92f42c4-49ee-5fa1-9ed8-282e8e38afad"
        fingerprint = "d16325fd954e696fae6c042e0e00ed148836bd9c55df8974e7bcb8135e5bad6d"
        version = 1
        date = "2026-11-20"
        modified = "2026-11-20"
        status = "RELEASED"
        author = "Signature Team"
        description = "Word 97 document whose VBA project auto-runs encoded PowerShell (matched in the compressed VBA stream)"
        category = "MAL"
        family = "WbMacro"
        hash = "d44f379696d05d50e6178f3c00032c4994dd492f827c915d409d837f58bf7919"
        source = "d44f379696d05d50e6178f3c00032c4994dd492f827c915d409d837f58bf7919"
    strings:
        $vba = "_VBA_PROJECT" wide
        // MS-OVBA compression splits literals with a flag byte every 8 tokens
        $marker = { 57 42 44 45 ?? 4D 4F 2D 4D 41 43 52 4F }
        $auto = "AutoOpe"
        $ps = "powershe"
    condition:
        uint32be(0) == 0xD0CF11E0 and filesize < 20MB and $vba and ($marker or ($auto and $ps))
}
