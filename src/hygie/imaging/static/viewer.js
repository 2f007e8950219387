// Chest CT viewer: three orthogonal views (MPR), window presets, scroll, zoom, pan,
// distance measure, and lesion annotation (brush, eraser, threshold brush, polygon)
// saved to the server as a DICOM SEG of the reader's own.
"use strict";
(function () {
  const root = document.getElementById("viewer");
  const statusEl = document.getElementById("status");
  const LABEL_RGB = { 1: [255, 214, 0], 2: [230, 50, 50], 3: [60, 140, 255] };
  // Automatic segmentation overlay: ground glass and consolidation (labels 3 and 4).
  const AUTO_RGB = { 3: [0, 220, 220], 4: [220, 0, 220] };
  // Attenuation ranges of the threshold brush, per label (HU, inclusive-exclusive).
  const THRESHOLD = { 1: [-750, -300], 2: [-300, 101], 3: [-750, 101] };
  const S = {
    hu: null, labels: null, shape: [0, 0, 0], spacing: [1, 1, 1], superiorLast: true,
    center: -600, width: 1500, tool: "navigate", label: 1, brushMm: 8,
    pos: { k: 0, j: 0, i: 0 }, seriesUid: null, views: {}, dirty: false,
    auto: null, showAuto: false,
  };

  function say(text) { statusEl.textContent = text; }
  // Numbers the French way (4,9 ; 1 234), as the rest of the pages write them.
  function fr(n, digits) {
    return n.toLocaleString("fr-FR", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // --- geometry of the three planes ------------------------------------------------
  function planeSize(plane) {
    const [nz, ny, nx] = S.shape, [dz, dy, dx] = S.spacing;
    if (plane === "axial") return { w: nx, h: ny, pw: dx, ph: dy };
    if (plane === "coronal") return { w: nx, h: nz, pw: dx, ph: dz };
    return { w: ny, h: nz, pw: dy, ph: dz };
  }
  function zOfRow(v) { return S.superiorLast ? S.shape[0] - 1 - v : v; }
  function voxelAt(plane, u, v) {
    if (plane === "axial") return [S.pos.k, v, u];
    if (plane === "coronal") return [zOfRow(v), S.pos.j, u];
    return [zOfRow(v), u, S.pos.i];
  }
  function inside(k, j, i) {
    return k >= 0 && j >= 0 && i >= 0 && k < S.shape[0] && j < S.shape[1] && i < S.shape[2];
  }
  function index(k, j, i) { return (k * S.shape[1] + j) * S.shape[2] + i; }

  function layout(view) {
    const { w, h, pw, ph } = planeSize(view.plane);
    const cw = view.canvas.width, ch = view.canvas.height;
    const fit = Math.min(cw / (w * pw), ch / (h * ph)) * view.zoom;
    const sx = fit * pw, sy = fit * ph;
    return { w, h, pw, ph, sx, sy, ox: cw / 2 - (w * sx) / 2 + view.panX, oy: ch / 2 - (h * sy) / 2 + view.panY };
  }
  function toImage(view, event) {
    const rect = view.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) * view.canvas.width / rect.width;
    const y = (event.clientY - rect.top) * view.canvas.height / rect.height;
    const L = layout(view);
    return { u: (x - L.ox) / L.sx, v: (y - L.oy) / L.sy, x, y };
  }

  // --- rendering ----------------------------------------------------------------------
  function render(plane) {
    const view = S.views[plane];
    if (!S.hu) return;
    const { w, h } = planeSize(plane);
    if (view.off.width !== w || view.off.height !== h) { view.off.width = w; view.off.height = h; }
    const octx = view.off.getContext("2d");
    const img = octx.createImageData(w, h);
    const px = img.data;
    const low = S.center - S.width / 2, scale = 255 / S.width;
    for (let v = 0; v < h; v++) {
      for (let u = 0; u < w; u++) {
        const [k, j, i] = voxelAt(plane, u, v);
        const n = index(k, j, i);
        let g = (S.hu[n] - low) * scale;
        g = g < 0 ? 0 : g > 255 ? 255 : g;
        const o = (v * w + u) * 4;
        const l = S.labels[n];
        const a = S.showAuto && S.auto ? AUTO_RGB[S.auto[n]] : null;
        if (l) {
          const c = LABEL_RGB[l] || [255, 255, 255];
          px[o] = g * 0.55 + c[0] * 0.45; px[o + 1] = g * 0.55 + c[1] * 0.45; px[o + 2] = g * 0.55 + c[2] * 0.45;
        } else if (a) {
          px[o] = g * 0.6 + a[0] * 0.4; px[o + 1] = g * 0.6 + a[1] * 0.4; px[o + 2] = g * 0.6 + a[2] * 0.4;
        } else { px[o] = px[o + 1] = px[o + 2] = g; }
        px[o + 3] = 255;
      }
    }
    octx.putImageData(img, 0, 0);
    const ctx = view.ctx, L = layout(view);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, view.canvas.width, view.canvas.height);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(view.off, L.ox, L.oy, w * L.sx, h * L.sy);
    drawCrosshair(view, L);
    if (view.measure) drawMeasure(view, L);
    if (view.poly.length) drawPolygon(view, L);
    const caption = view.canvas.parentElement.querySelector(".pos");
    const n = plane === "axial" ? [S.pos.k, S.shape[0]] : plane === "coronal" ? [S.pos.j, S.shape[1]] : [S.pos.i, S.shape[2]];
    caption.textContent = `${n[0] + 1}/${n[1]}`;
  }
  function renderAll() { for (const p of Object.keys(S.views)) render(p); }

  function drawCrosshair(view, L) {
    const ctx = view.ctx;
    ctx.strokeStyle = "rgba(80,200,255,.35)";
    ctx.lineWidth = 1;
    let cu, cv;
    const zRow = S.superiorLast ? S.shape[0] - 1 - S.pos.k : S.pos.k;
    if (view.plane === "axial") { cu = S.pos.i; cv = S.pos.j; }
    else if (view.plane === "coronal") { cu = S.pos.i; cv = zRow; }
    else { cu = S.pos.j; cv = zRow; }
    const x = L.ox + (cu + 0.5) * L.sx, y = L.oy + (cv + 0.5) * L.sy;
    ctx.beginPath();
    ctx.moveTo(x, L.oy); ctx.lineTo(x, L.oy + L.h * L.sy);
    ctx.moveTo(L.ox, y); ctx.lineTo(L.ox + L.w * L.sx, y);
    ctx.stroke();
  }
  function drawMeasure(view, L) {
    const m = view.measure, ctx = view.ctx;
    const x1 = L.ox + m.u1 * L.sx, y1 = L.oy + m.v1 * L.sy, x2 = L.ox + m.u2 * L.sx, y2 = L.oy + m.v2 * L.sy;
    ctx.strokeStyle = "#7fff7f"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
    ctx.fillStyle = "#7fff7f"; ctx.font = "16px system-ui";
    ctx.fillText(`${fr(m.mm, 1)} mm`, x2 + 6, y2 - 6);
  }
  function drawPolygon(view, L) {
    const ctx = view.ctx;
    ctx.strokeStyle = "rgb(" + LABEL_RGB[S.label].join(",") + ")"; ctx.lineWidth = 2;
    ctx.beginPath();
    view.poly.forEach((p, n) => {
      const x = L.ox + p.u * L.sx, y = L.oy + p.v * L.sy;
      if (n) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  }

  // --- annotation ---------------------------------------------------------------------
  function paint(view, u0, v0) {
    const { w, h, pw, ph } = planeSize(view.plane);
    const r = S.brushMm, ru = Math.ceil(r / pw), rv = Math.ceil(r / ph);
    const erase = S.tool === "eraser", range = S.tool === "threshold" ? THRESHOLD[S.label] : null;
    const cu = Math.floor(u0), cv = Math.floor(v0);
    for (let v = cv - rv; v <= cv + rv; v++) {
      for (let u = cu - ru; u <= cu + ru; u++) {
        if (u < 0 || v < 0 || u >= w || v >= h) continue;
        const du = (u - cu) * pw, dv = (v - cv) * ph;
        if (du * du + dv * dv > r * r) continue;
        const [k, j, i] = voxelAt(view.plane, u, v);
        const n = index(k, j, i);
        if (erase) { S.labels[n] = 0; continue; }
        if (range && (S.hu[n] < range[0] || S.hu[n] >= range[1])) continue;
        S.labels[n] = S.label;
      }
    }
    S.dirty = true;
  }
  function fillPolygon(view) {
    const pts = view.poly;
    const { w, h } = planeSize(view.plane);
    const us = pts.map((p) => p.u), vs = pts.map((p) => p.v);
    const u0 = Math.max(0, Math.floor(Math.min(...us))), u1 = Math.min(w - 1, Math.ceil(Math.max(...us)));
    const v0 = Math.max(0, Math.floor(Math.min(...vs))), v1 = Math.min(h - 1, Math.ceil(Math.max(...vs)));
    let count = 0;
    for (let v = v0; v <= v1; v++) {
      for (let u = u0; u <= u1; u++) {
        const x = u + 0.5, y = v + 0.5;
        let inPoly = false;
        for (let a = 0, b = pts.length - 1; a < pts.length; b = a++) {
          const pa = pts[a], pb = pts[b];
          if ((pa.v > y) !== (pb.v > y) && x < ((pb.u - pa.u) * (y - pa.v)) / (pb.v - pa.v) + pa.u) inPoly = !inPoly;
        }
        if (!inPoly) continue;
        const [k, j, i] = voxelAt(view.plane, u, v);
        S.labels[index(k, j, i)] = S.label;
        count++;
      }
    }
    view.poly = [];
    S.dirty = true;
    say(`Polygone rempli (${count} voxels)`);
  }

  // --- interaction --------------------------------------------------------------------
  function setPosFrom(view, p) {
    const u = Math.floor(p.u), v = Math.floor(p.v);
    const [k, j, i] = voxelAt(view.plane, u, v);
    if (!inside(k, j, i)) return;
    if (view.plane !== "axial") S.pos.k = k;
    if (view.plane !== "coronal") S.pos.j = j;
    if (view.plane !== "sagittal") S.pos.i = i;
  }
  function scroll(view, delta) {
    const key = view.plane === "axial" ? "k" : view.plane === "coronal" ? "j" : "i";
    const max = view.plane === "axial" ? S.shape[0] : view.plane === "coronal" ? S.shape[1] : S.shape[2];
    S.pos[key] = Math.max(0, Math.min(max - 1, S.pos[key] + delta));
    renderAll();
  }

  function attach(view) {
    const c = view.canvas;
    let drag = null;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.ctrlKey) { view.zoom = Math.max(0.25, Math.min(16, view.zoom * Math.exp(-e.deltaY / 300))); render(view.plane); }
      else scroll(view, e.deltaY > 0 ? -1 : 1);
    }, { passive: false });
    c.addEventListener("pointerdown", (e) => {
      if (!S.hu) return;
      c.setPointerCapture(e.pointerId);
      const p = toImage(view, e);
      drag = { x: e.clientX, y: e.clientY, p };
      if (S.tool === "navigate") { setPosFrom(view, p); renderAll(); }
      else if (S.tool === "brush" || S.tool === "eraser" || S.tool === "threshold") { paint(view, p.u, p.v); renderAll(); }
      else if (S.tool === "measure") { view.measure = { u1: p.u, v1: p.v, u2: p.u, v2: p.v, mm: 0 }; }
      else if (S.tool === "polygon") {
        const first = view.poly[0];
        if (first && Math.hypot((first.u - p.u) * layout(view).sx, (first.v - p.v) * layout(view).sy) < 8 && view.poly.length > 2) {
          fillPolygon(view); renderAll();
        } else { view.poly.push({ u: p.u, v: p.v }); render(view.plane); }
      }
    });
    c.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const p = toImage(view, e);
      if (S.tool === "navigate") { setPosFrom(view, p); renderAll(); }
      else if (S.tool === "pan") { view.panX += e.clientX - drag.x; view.panY += e.clientY - drag.y; render(view.plane); }
      else if (S.tool === "zoom") { view.zoom = Math.max(0.25, Math.min(16, view.zoom * Math.exp(-(e.clientY - drag.y) / 150))); render(view.plane); }
      else if (S.tool === "brush" || S.tool === "eraser" || S.tool === "threshold") { paint(view, p.u, p.v); renderAll(); }
      else if (S.tool === "measure") { updateMeasure(view, p); render(view.plane); }
      drag.x = e.clientX; drag.y = e.clientY;
    });
    c.addEventListener("pointerup", (e) => {
      if (drag && S.tool === "measure") { updateMeasure(view, toImage(view, e)); render(view.plane); }
      drag = null;
    });
    c.addEventListener("dblclick", () => {
      if (S.tool === "polygon" && view.poly.length > 2) { fillPolygon(view); renderAll(); }
    });
  }
  function updateMeasure(view, p) {
    const m = view.measure, { pw, ph } = planeSize(view.plane);
    m.u2 = p.u; m.v2 = p.v;
    m.mm = Math.hypot((m.u2 - m.u1) * pw, (m.v2 - m.v1) * ph);
    document.getElementById("measure-result").textContent = `Distance : ${fr(m.mm, 1)} mm`;
  }

  function setTool(tool) {
    S.tool = tool;
    for (const b of document.querySelectorAll("button.tool")) b.classList.toggle("active", b.dataset.tool === tool);
    for (const v of Object.values(S.views)) v.poly = [];
    root.dataset.tool = tool;
  }
  function setWindow(center, width) {
    S.center = center; S.width = width;
    document.getElementById("window-info").textContent = `L ${center} / W ${width}`;
    for (const b of document.querySelectorAll("button.preset"))
      b.classList.toggle("active", Number(b.dataset.center) === center && Number(b.dataset.width) === width);
    root.dataset.window = `${center},${width}`;
    renderAll();
  }

  // --- server ---------------------------------------------------------------------------
  async function problem(r) {
    const p = await r.json().catch(() => ({}));
    return p.detail || `${r.status}`;
  }
  async function loadSeries(uid) {
    say("Chargement de la série…");
    root.dataset.ready = "false";
    const r = await fetch(`/imaging/api/series/${encodeURIComponent(uid)}/volume`);
    if (!r.ok) { say(`Série illisible : ${await problem(r)}`); return; }
    const header = JSON.parse(r.headers.get("X-Volume"));
    const buffer = await r.arrayBuffer();
    S.hu = new Int16Array(buffer);
    S.shape = header.shape; S.spacing = header.spacing; S.superiorLast = header.superiorLast;
    S.seriesUid = uid;
    S.pos = { k: Math.floor(S.shape[0] / 2), j: Math.floor(S.shape[1] / 2), i: Math.floor(S.shape[2] / 2) };
    const a = await fetch(`/imaging/api/series/${encodeURIComponent(uid)}/annotations`);
    S.labels = a.ok ? new Uint8Array(await a.arrayBuffer()) : new Uint8Array(S.hu.length);
    if (S.labels.length !== S.hu.length) S.labels = new Uint8Array(S.hu.length);
    for (const v of Object.values(S.views)) { v.zoom = 1; v.panX = 0; v.panY = 0; v.measure = null; v.poly = []; }
    S.dirty = false;
    S.auto = null; S.showAuto = false;
    const auto = document.getElementById("show-auto");
    auto.checked = false; auto.disabled = true;
    renderAll();
    root.dataset.ready = "true";
    say(`${header.patientName} — ${header.description} (${S.shape[2]}×${S.shape[1]}×${S.shape[0]})`);
    loadQuantification(uid);
  }
  async function save() {
    if (!S.labels) return;
    say("Enregistrement…");
    let body = S.labels, headers = { "Content-Type": "application/octet-stream" };
    if (window.CompressionStream) {
      const stream = new Blob([S.labels]).stream().pipeThrough(new CompressionStream("gzip"));
      body = await new Response(stream).arrayBuffer();
      headers["Content-Encoding"] = "gzip";
    }
    const r = await fetch(`/imaging/api/series/${encodeURIComponent(S.seriesUid)}/annotations`,
                          { method: "PUT", headers, body });
    if (!r.ok) { say(`Enregistrement refusé : ${await problem(r)}`); return; }
    const done = await r.json();
    S.dirty = false;
    root.dataset.saved = done.segInstanceUid;
    say(`Annotations enregistrées (DICOM SEG ${done.segInstanceUid})`);
    const select = document.getElementById("reading-status");
    if (select.value === "assigned") select.value = "in-progress";
  }
  async function setReading(status) {
    const r = await fetch(`/imaging/api/studies/${encodeURIComponent(root.dataset.study)}/reading`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ status }),
    });
    say(r.ok ? "Statut de lecture enregistré" : `Statut refusé : ${await problem(r)}`);
  }
  async function loadReading() {
    const r = await fetch("/imaging/api/worklist?mine=1");
    if (!r.ok) return;
    const data = await r.json();
    const mine = data.studies.find((s) => s.studyUid === root.dataset.study);
    const reading = mine && mine.readings.find((x) => x.reader === data.reader);
    if (reading) document.getElementById("reading-status").value = reading.status;
  }
  async function loadQuantification(uid) {
    const box = document.querySelector("#quantification .body");
    const r = await fetch(`/imaging/api/series/${encodeURIComponent(uid)}/quantification`);
    if (!r.ok) { box.textContent = "Pas de quantification pour cette série."; return; }
    const q = await r.json();
    if (q.state !== "done") { box.textContent = `Quantification : ${q.state}`; return; }
    const auto = document.getElementById("show-auto");
    auto.disabled = false;
    auto.onchange = async () => {
      if (auto.checked && !S.auto) {
        const a = await fetch(`/imaging/api/series/${encodeURIComponent(uid)}/quantification/labels`);
        if (!a.ok) { say(`Segmentation indisponible : ${await problem(a)}`); auto.checked = false; return; }
        S.auto = new Uint8Array(await a.arrayBuffer());
        let lesions = 0;
        for (const v of S.auto) if (v >= 3) lesions++;
        root.dataset.autoLesionVoxels = String(lesions);
      }
      S.showAuto = auto.checked;
      renderAll();
    };
    const f = q.figures;
    const rows = [["Volume pulmonaire", `${fr(f.lung_volume_ml, 0)} mL`],
                  ["Opacités", `${fr(f.percent_opacity, 1)} %`],
                  ["Condensations", `${fr(f.percent_high_opacity, 1)} %`],
                  ["Poumon bien aéré", `${fr(f.percent_well_aerated, 1)} %`],
                  ["Score total", `${f.total_score}/30`]];
    for (const z of f.zones) rows.push([`Score ${z.side === "right" ? "droit" : "gauche"} ${({ upper: "supérieur", middle: "moyen", lower: "inférieur" })[z.zone]}`, `${z.score} (${fr(z.percent_opacity, 1)} %)`]);
    const table = document.createElement("table");
    for (const [k, v] of rows) {
      const tr = table.insertRow();
      tr.insertCell().textContent = k; tr.insertCell().textContent = v;
    }
    box.replaceChildren(table);
    box.classList.remove("muted");
  }
  async function start() {
    for (const c of document.querySelectorAll(".views canvas")) {
      const view = { plane: c.dataset.plane, canvas: c, ctx: c.getContext("2d"), off: document.createElement("canvas"),
                     zoom: 1, panX: 0, panY: 0, measure: null, poly: [] };
      S.views[view.plane] = view;
      attach(view);
    }
    for (const b of document.querySelectorAll("button.tool")) b.addEventListener("click", () => setTool(b.dataset.tool));
    for (const b of document.querySelectorAll("button.preset"))
      b.addEventListener("click", () => setWindow(Number(b.dataset.center), Number(b.dataset.width)));
    document.getElementById("label").addEventListener("change", (e) => { S.label = Number(e.target.value); });
    const size = document.getElementById("brush-size");
    size.addEventListener("input", () => { S.brushMm = Number(size.value); document.getElementById("brush-mm").textContent = `${size.value} mm`; });
    document.getElementById("save").addEventListener("click", save);
    document.getElementById("reading-status").addEventListener("change", (e) => setReading(e.target.value));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") { for (const v of Object.values(S.views)) v.poly = []; renderAll(); } });
    window.addEventListener("beforeunload", (e) => { if (S.dirty) e.preventDefault(); });
    setTool("navigate");
    setWindow(-600, 1500);
    const r = await fetch(`/imaging/api/studies/${encodeURIComponent(root.dataset.study)}/series`);
    if (!r.ok) { say(`Examen introuvable : ${await problem(r)}`); return; }
    const series = (await r.json()).filter((s) => s.modality !== "SEG" && s.modality !== "SR");
    const select = document.getElementById("series");
    for (const s of series) {
      const o = document.createElement("option");
      o.value = s.seriesUid; o.textContent = `${s.number ?? ""} ${s.modality} ${s.description || ""} (${s.instances})`;
      select.append(o);
    }
    select.addEventListener("change", () => loadSeries(select.value));
    const chosen = root.dataset.series || (series.slice().sort((a, b) => b.instances - a.instances)[0] || {}).seriesUid;
    if (!chosen) { say("Aucune série d'images dans cet examen."); return; }
    select.value = chosen;
    loadReading();
    await loadSeries(chosen);
  }
  start();
})();
