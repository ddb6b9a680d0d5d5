// Renders the weekly report table (no network access, no ActiveX).
function renderReport(rows) {
  var table = document.getElementById("report");
  rows.forEach(function (row) {
    var tr = table.insertRow(-1);
    tr.insertCell(0).textContent = row.name;
    tr.insertCell(1).textContent = row.total.toFixed(2);
  });
}
