"""Subjects, senders, names and queries that the text-index tests of both backends share."""

SUBJECTS = ["Invoice 4471", "invoice reminder", "Lunch plans", "50% off_today", "Ünïcode Straße",
            'He said "hi"', "payroll update", "re: invoice", "ab", "Contract renewal 2027"]
SENDERS = ["billing@evil.example", "anna@example.com", "hr@Example.com", "news@shop.example"]
NAMES = ["invoice.zip", "payroll.xlsm", "", "scan_0047.pdf.exe", "straße.txt"]

QUERIES = ["invoice", "INVOICE 4471", "off_today", "50%", "straße", "ünïcode", '"said ""hi"""',
           "from:example.com", "from:EVIL", "subject:renewal", "name:.zip", "name:pdf.exe",
           "-subject:invoice", "-name:zip lunch", "ab", "re:", "zzz-nothing", "voice remind",
           "tower:t01 payroll"]
