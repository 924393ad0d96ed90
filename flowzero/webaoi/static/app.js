/* flowzero generate-aoi: draw a polygon or rectangle, see its area, save it through the local server.
 *
 * The page only draws. The server validates the name and the geometry and computes the authoritative area
 * (on the WGS84 ellipsoid) when saving; the area shown while drawing is spherical and agrees to ~0.5 %.
 */
(function () {
  "use strict";

  var EARTH_RADIUS = 6371007.2; // metres, authalic sphere: equal area with the WGS84 ellipsoid
  var CLOSE_PIXELS = 8;

  function $(id) { return document.getElementById(id); }

  // -- area ------------------------------------------------------------------------------------------------

  function rad(deg) { return deg * Math.PI / 180; }

  /** Area in km² of a ring of L.LatLng on the sphere (the formula of Chamberlain & Duquette, JPL 2007). */
  function ringAreaKm2(points) {
    if (points.length < 3) { return 0; }
    var sum = 0;
    for (var i = 0; i < points.length; i++) {
      var p1 = points[i], p2 = points[(i + 1) % points.length];
      sum += rad(p2.lng - p1.lng) * (2 + Math.sin(rad(p1.lat)) + Math.sin(rad(p2.lat)));
    }
    return Math.abs(sum * EARTH_RADIUS * EARTH_RADIUS / 2) / 1e6;
  }

  function formatKm2(km2) {
    var digits = km2 < 1 ? 4 : (km2 < 100 ? 2 : 0);
    var ha = Math.round(km2 * 100).toLocaleString("en-US");
    return km2.toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits}) +
      " km² (" + ha + " ha)";
  }

  // -- map -------------------------------------------------------------------------------------------------

  var map = L.map("map", {worldCopyJump: false, zoomControl: false});
  L.control.zoom({position: "topright"}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  var drawing = L.layerGroup().addTo(map);
  var savedLayer = L.featureGroup().addTo(map);
  var gridLayer = L.layerGroup();
  var plain = false;

  var state = {mode: null, points: [], rectStart: null, done: false, cursor: null};
  var page = {map: map, state: state, ready: false, ringAreaKm2: ringAreaKm2};
  window.flowzeroAoi = page;

  function viewFromHash() {
    var match = /map=(\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)/.exec(window.location.hash);
    if (!match) { return null; }
    return {zoom: parseFloat(match[1]), center: [parseFloat(match[2]), parseFloat(match[3])]};
  }

  function useTiles(config) {
    if (!config.tiles) { goPlain(null); return; }
    var loaded = 0;
    var layer = L.tileLayer(config.tiles, {maxZoom: 19, attribution: config.attribution});
    layer.on("tileload", function () { loaded += 1; });
    layer.on("tileerror", function () { if (!loaded) { goPlain(layer); } });
    layer.addTo(map);
  }

  /** No tiles (offline, blocked, or --tiles none): a plain background with a longitude/latitude grid. */
  function goPlain(layer) {
    if (plain) { return; }
    plain = true;
    if (layer) { map.removeLayer(layer); }
    $("map").classList.add("plain");
    $("offline-note").hidden = !layer;
    gridLayer.addTo(map);
    drawGrid();
    map.on("moveend", drawGrid);
  }

  function gridStep() {
    var bounds = map.getBounds();
    var span = Math.max(bounds.getEast() - bounds.getWest(), bounds.getNorth() - bounds.getSouth());
    var steps = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001];
    for (var i = 0; i < steps.length; i++) {
      if (span / steps[i] >= 4) { return steps[i]; }
    }
    return steps[steps.length - 1];
  }

  function drawGrid() {
    gridLayer.clearLayers();
    var b = map.getBounds(), step = gridStep();
    var south = Math.max(-85, b.getSouth()), north = Math.min(85, b.getNorth());
    var west = Math.max(-180, b.getWest()), east = Math.min(180, b.getEast());
    var style = {color: "#9aa9b1", weight: 1, opacity: 0.6, interactive: false};
    var decimals = step < 1 ? String(step).split(".")[1].length : 0;
    for (var lon = Math.ceil(west / step) * step; lon <= east; lon += step) {
      gridLayer.addLayer(L.polyline([[south, lon], [north, lon]], style));
      gridLayer.addLayer(label([north, lon], lon.toFixed(decimals) + "°", [-3, -3]));
    }
    for (var lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
      gridLayer.addLayer(L.polyline([[lat, west], [lat, east]], style));
      gridLayer.addLayer(label([lat, west], lat.toFixed(decimals) + "°", [-4, 15]));
    }
  }

  /** A grid label whose top-left corner sits ``offset`` pixels left of and above ``latlng``. */
  function label(latlng, text, offset) {
    return L.marker(latlng, {interactive: false, keyboard: false, icon: L.divIcon({
      className: "grid-label", html: text, iconSize: null, iconAnchor: offset})});
  }

  // -- drawing ---------------------------------------------------------------------------------------------

  var shapeStyle = {color: "#d9480f", weight: 2, fillOpacity: 0.15};

  function setMessage(text, kind) {
    var el = $("message");
    el.textContent = text || "";
    el.className = kind || "";
  }

  function setHelp(text) { $("help").textContent = text; }

  function previewPoints() {
    var pts = state.points.slice();
    if (state.mode === "rectangle" && state.rectStart && state.cursor) {
      return rectangle(state.rectStart, state.cursor);
    }
    if (state.mode === "polygon" && state.cursor && !state.done) { pts.push(state.cursor); }
    return pts;
  }

  function rectangle(a, b) {
    return [L.latLng(a.lat, a.lng), L.latLng(a.lat, b.lng), L.latLng(b.lat, b.lng), L.latLng(b.lat, a.lng)];
  }

  function render() {
    drawing.clearLayers();
    var pts = previewPoints();
    if (pts.length >= 3) {
      drawing.addLayer(L.polygon(pts, L.extend({dashArray: state.done ? null : "5 5"}, shapeStyle)));
    } else if (pts.length === 2) {
      drawing.addLayer(L.polyline(pts, L.extend({dashArray: "5 5"}, shapeStyle)));
    }
    state.points.forEach(function (p, i) {
      drawing.addLayer(L.circleMarker(p, {radius: i === 0 ? 5 : 4, color: "#d9480f", weight: 2,
        fillColor: "#fff", fillOpacity: 1, interactive: false}));
    });
    var area = ringAreaKm2(pts);
    $("area").textContent = pts.length >= 3 ? formatKm2(area) : "–";
    $("area").dataset.km2 = pts.length >= 3 ? String(area) : "";
    $("finish").disabled = !(state.mode === "polygon" && state.points.length >= 3);
    $("undo").disabled = !(state.mode && state.points.length);
    $("clear").disabled = !(state.mode || state.done);
    $("save").disabled = !state.done;
    $("draw-polygon").classList.toggle("active", state.mode === "polygon");
    $("draw-rectangle").classList.toggle("active", state.mode === "rectangle");
  }

  function start(mode) {
    reset();
    state.mode = mode;
    map.doubleClickZoom.disable();
    $("map").classList.add("drawing");
    setHelp(mode === "polygon"
      ? "Click to add corners. Double-click, click the first corner or press Finish to close. Esc cancels."
      : "Click one corner, then the opposite corner. Esc cancels.");
    setMessage("");
    render();
  }

  function reset() {
    state.mode = null;
    state.points = [];
    state.rectStart = null;
    state.done = false;
    $("map").classList.remove("drawing");
    hideConfirm();
    setTimeout(function () { if (!state.mode) { map.doubleClickZoom.enable(); } }, 400);
    setHelp("Choose Polygon or Rectangle, then click on the map.");
    render();
  }

  function finish() {
    if (state.mode === "polygon" && state.points.length < 3) {
      setMessage("A polygon needs at least 3 corners.", "error");
      return;
    }
    state.mode = null;
    state.done = true;
    state.cursor = null;
    $("map").classList.remove("drawing");
    setTimeout(function () { if (!state.mode) { map.doubleClickZoom.enable(); } }, 400);
    setHelp("Done. Name it and save, or Clear to start again.");
    render();
    $("aoi-name").focus();
  }

  function nearFirst(latlng) {
    if (state.points.length < 3) { return false; }
    return map.latLngToContainerPoint(state.points[0]).distanceTo(map.latLngToContainerPoint(latlng)) < CLOSE_PIXELS;
  }

  map.on("click", function (e) {
    if (state.mode === "polygon") {
      // The second click of a double-click closes the polygon (its first click added the last corner).
      if (nearFirst(e.latlng) || (e.originalEvent && e.originalEvent.detail >= 2)) { finish(); return; }
      state.points.push(e.latlng);
      render();
    } else if (state.mode === "rectangle") {
      if (!state.rectStart) {
        state.rectStart = e.latlng;
        state.points = [e.latlng];
        render();
      } else {
        state.points = rectangle(state.rectStart, e.latlng);
        finish();
      }
    }
  });

  map.on("dblclick", function () {
    // Normally the polygon is closed already by the second click; this covers browsers sending no click detail.
    if (state.mode !== "polygon") { return; }
    var n = state.points.length;
    if (n >= 2 && map.latLngToContainerPoint(state.points[n - 1])
      .distanceTo(map.latLngToContainerPoint(state.points[n - 2])) < 4) {
      state.points.pop();
    }
    finish();
  });

  map.on("mousemove", function (e) {
    state.cursor = e.latlng;
    $("cursor").textContent = e.latlng.lat.toFixed(5) + ", " + e.latlng.lng.toFixed(5);
    if (state.mode) { render(); }
  });

  $("draw-polygon").addEventListener("click", function () { start("polygon"); });
  $("draw-rectangle").addEventListener("click", function () { start("rectangle"); });
  $("finish").addEventListener("click", finish);
  $("undo").addEventListener("click", function () {
    state.points.pop();
    if (state.mode === "rectangle") { state.rectStart = null; }
    render();
  });
  $("clear").addEventListener("click", function () { reset(); setMessage(""); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && (state.mode || state.done)) { reset(); }
    if (e.key === "Enter" && state.mode === "polygon" && document.activeElement === document.body) { finish(); }
  });

  // -- saving ----------------------------------------------------------------------------------------------

  function geometry() {
    var ring = state.points.map(function (p) { return [p.lng, p.lat]; });
    ring.push(ring[0]);
    return {type: "Polygon", coordinates: [ring]};
  }

  function showConfirm(name) {
    $("confirm-text").textContent = "An AOI named \"" + name + "\" already exists. Overwrite it?";
    $("confirm").hidden = false;
    $("confirm-overwrite").focus();
  }

  function hideConfirm() { $("confirm").hidden = true; }

  function save(overwrite) {
    hideConfirm();
    var name = $("aoi-name").value.trim();
    if (!state.done) { setMessage("Draw the area first.", "error"); return; }
    if (!name) { setMessage("Give the AOI a name first.", "error"); $("aoi-name").focus(); return; }
    setMessage("Saving…");
    fetch("/api/aois", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: name, geometry: geometry(), overwrite: !!overwrite})
    }).then(function (response) {
      return response.json().then(function (data) { return {status: response.status, data: data}; });
    }).then(function (answer) {
      if (answer.status === 201) {
        var saved = answer.data.saved;
        setMessage("Saved " + saved.file + " (" + formatKm2(saved.area_sqkm) + ")", "ok");
        $("aoi-name").value = "";
        reset();
        loadList(saved.name);
      } else if (answer.status === 409) {
        setMessage("");
        showConfirm(name);
      } else {
        var data = answer.data || {};
        setMessage((data.error || ("error " + answer.status)) + (data.hint ? " (" + data.hint + ")" : ""), "error");
      }
    }).catch(function () {
      setMessage("Cannot reach flowzero: is `flowzero generate-aoi` still running?", "error");
    });
  }

  $("save").addEventListener("click", function () { save(false); });
  $("aoi-name").addEventListener("keydown", function (e) { if (e.key === "Enter") { save(false); } });
  $("confirm-overwrite").addEventListener("click", function () { save(true); });
  $("confirm-cancel").addEventListener("click", function () {
    hideConfirm();
    setMessage("Not saved: choose another name.", "");
    $("aoi-name").focus();
  });

  // -- saved AOIs ------------------------------------------------------------------------------------------

  function loadList(highlight) {
    return fetch("/api/aois").then(function (r) { return r.json(); }).then(function (data) {
      $("folder").textContent = data.folder;
      var list = $("aoi-list");
      list.innerHTML = "";
      savedLayer.clearLayers();
      if (!data.aois.length) {
        var empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = "none yet";
        list.appendChild(empty);
      }
      data.aois.forEach(function (aoi) {
        var li = document.createElement("li");
        var name = document.createElement("span");
        name.textContent = aoi.name;
        li.appendChild(name);
        li.dataset.name = aoi.name;
        if (aoi.error) {
          li.className = "bad";
          li.title = aoi.error;
          var bad = document.createElement("span");
          bad.className = "km2";
          bad.textContent = "unreadable";
          li.appendChild(bad);
        } else {
          var km2 = document.createElement("span");
          km2.className = "km2";
          km2.textContent = formatKm2(aoi.area_sqkm).split(" (")[0];
          li.appendChild(km2);
          var layer = L.geoJSON(aoi.geometry, {style: {color: aoi.name === highlight ? "#1e7b34" : "#1f6f9f",
            weight: 2, fillOpacity: 0.08}}).bindTooltip(aoi.name);
          savedLayer.addLayer(layer);
          li.title = aoi.file;
          li.addEventListener("click", function () { map.fitBounds(layer.getBounds(), {maxZoom: 15}); });
        }
        list.appendChild(li);
      });
      return data;
    });
  }

  $("goto-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var parts = $("goto").value.split(/[\s,;]+/).filter(Boolean).map(Number);
    if (parts.length < 2 || parts.some(isNaN) || Math.abs(parts[0]) > 90 || Math.abs(parts[1]) > 180) {
      setMessage("Go to: type latitude, longitude and optionally a zoom level, e.g. 36.6, -121.6, 10", "error");
      return;
    }
    map.setView([parts[0], parts[1]], parts.length > 2 ? parts[2] : Math.max(map.getZoom(), 10));
  });

  // -- start -----------------------------------------------------------------------------------------------

  var view = viewFromHash();
  if (view) { map.setView(view.center, view.zoom); } else { map.setView([20, 0], 2); }
  fetch("/api/config").then(function (r) { return r.json(); }).then(function (config) {
    useTiles(config);
    return loadList(null);
  }).then(function (data) {
    if (!view && data.aois.some(function (a) { return !a.error; })) {
      map.fitBounds(savedLayer.getBounds(), {maxZoom: 14});
    }
    page.ready = true;
  }).catch(function (err) {
    setMessage("Cannot load the page's data: " + err, "error");
  });
  render();
}());
