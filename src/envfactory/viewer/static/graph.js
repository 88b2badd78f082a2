// Draws the tool graph of /graph with the vendored Cytoscape.js from the JSON at #cy[data-src].
// Loaded as a file (the page's Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var container = document.getElementById("cy");
  var status = document.getElementById("graph-status");
  if (!container || typeof cytoscape !== "function") { return; }

  // The provenance checkboxes edit one hidden field, so the form submits `provenance=a,b`.
  var field = document.getElementById("provenance-field");
  var boxes = document.querySelectorAll("input.prov");
  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      var chosen = [];
      boxes.forEach(function (b) { if (b.checked) { chosen.push(b.value); } });
      field.value = chosen.join(",");
    });
  });

  var colours = { schema: "#555", embedding: "#8e44ad", llm: "#16a085", manual: "#d35400" };
  fetch(container.dataset.src, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) { throw new Error("graph data: HTTP " + response.status); }
      return response.json();
    })
    .then(function (data) {
      var cy = cytoscape({
        container: container,
        elements: { nodes: data.nodes, edges: data.edges },
        wheelSensitivity: 0.3,
        style: [
          { selector: "node", style: { "label": "data(label)", "font-size": 9, "width": 14, "height": 14,
            "background-color": "#1f5fa8", "text-valign": "bottom", "color": "#223" } },
          { selector: "node[effect = 'write']", style: { "background-color": "#a3410d", "shape": "round-rectangle" } },
          { selector: "node[?focus]", style: { "border-width": 3, "border-color": "#f1c40f", "width": 22, "height": 22 } },
          { selector: "edge", style: { "width": 1.2, "curve-style": "bezier", "target-arrow-shape": "triangle",
            "arrow-scale": 0.7, "line-color": function (e) { return colours[e.data("provenance")] || "#555"; },
            "target-arrow-color": function (e) { return colours[e.data("provenance")] || "#555"; } } },
          { selector: "edge[!accepted]", style: { "line-style": "dashed", "opacity": 0.6 } }
        ],
        layout: { name: data.nodes.length > 150 ? "concentric" : "cose", animate: false, randomize: false }
      });
      cy.on("tap", "node", function (event) {
        var params = new URLSearchParams(window.location.search);
        params.set("tool", event.target.id());
        window.location.search = params.toString();
      });
      window.envfactoryGraph = cy;
      var hidden = data.hidden_nodes ? " (" + data.hidden_nodes + " more not drawn; narrow the filters)" : "";
      status.textContent = data.nodes.length + " tools, " + data.edges.length + " edges drawn" + hidden;
      container.dataset.drawn = String(data.nodes.length);
    })
    .catch(function (error) {
      status.textContent = "the graph could not be drawn: " + error.message;
      container.dataset.drawn = "error";
    });
})();
