document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === "asc" ? -1 : 1;
      th.dataset.dir = dir === 1 ? "asc" : "desc";
      function key(row) {
        var c = row.cells[col]; if (!c) return "";
        var v = c.getAttribute("data-v");
        return v !== null && v !== "" && !isNaN(+v) ? +v : c.textContent.trim().toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === "number" && typeof y === "number") return dir * (x - y);
        if (typeof x === "number") return -1;
        if (typeof y === "number") return 1;
        return dir * (x < y ? -1 : x > y ? 1 : 0);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
