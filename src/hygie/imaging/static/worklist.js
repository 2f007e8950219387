// Worklist of studies to read: my readings, or every study with its readers (admin).
"use strict";
(function () {
  const table = document.getElementById("worklist");
  const body = table.querySelector("tbody");
  const admin = table.dataset.admin === "true";
  const STATUS = { "assigned": "à lire", "in-progress": "en cours", "done": "terminée" };

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  // Numbers the French way (4,9 ; 1 234), as the rest of the pages write them.
  function fr(n, digits) {
    return n.toLocaleString("fr-FR", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function formatDate(d) {
    return d && d.length === 8 ? `${d.slice(6, 8)}/${d.slice(4, 6)}/${d.slice(0, 4)}` : "";
  }

  function quantText(q) {
    if (!q) return "—";
    if (q.state !== "done") return { pending: "en attente", running: "en cours", failed: "échec" }[q.state] || q.state;
    return `${fr(q.percentOpacity, 1)} % · score ${q.totalScore}/30`;
  }

  async function assign(studyUid, reader) {
    const r = await fetch(`/imaging/api/studies/${encodeURIComponent(studyUid)}/assignments`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ reader }),
    });
    if (!r.ok) {
      const p = await r.json().catch(() => ({}));
      alert(p.detail || "Affectation impossible");
    }
    await load();
  }

  function row(study, me) {
    const tr = document.createElement("tr");
    tr.dataset.study = study.studyUid;
    tr.append(cell(formatDate(study.studyDate)), cell(`${study.patientName} (${study.patientId})`),
              cell(study.description), cell(study.modalities.split("\\").join(", ")));
    const q = cell(quantText(study.quantification));
    q.className = "quant";
    tr.append(q);
    const readers = cell("");
    readers.className = "readers";
    for (const r of study.readings) {
      const span = document.createElement("span");
      span.className = `reading status-${r.status}` + (r.reader === me ? " mine" : "");
      span.textContent = `${r.reader} : ${STATUS[r.status] || r.status}`;
      readers.append(span);
    }
    if (!study.readings.length) readers.textContent = "non affecté";
    tr.append(readers);
    const actions = cell("");
    const open = document.createElement("a");
    open.href = `/imaging/viewer/${encodeURIComponent(study.studyUid)}`;
    open.textContent = "Lire";
    open.className = "button open";
    actions.append(open);
    if (admin) {
      const form = document.createElement("form");
      form.className = "assign";
      const input = document.createElement("input");
      input.name = "reader";
      input.placeholder = "lecteur";
      input.required = true;
      const button = document.createElement("button");
      button.type = "submit";
      button.textContent = "Affecter";
      form.append(input, button);
      form.addEventListener("submit", (e) => { e.preventDefault(); assign(study.studyUid, input.value.trim()); });
      actions.append(form);
    }
    tr.append(actions);
    return tr;
  }

  async function load() {
    const r = await fetch("/imaging/api/worklist", { headers: { Accept: "application/json" } });
    body.replaceChildren();
    if (!r.ok) {
      body.innerHTML = '<tr class="empty"><td colspan="7">Liste indisponible.</td></tr>';
      return;
    }
    const data = await r.json();
    if (!data.studies.length) {
      body.innerHTML = '<tr class="empty"><td colspan="7">Aucun examen à lire.</td></tr>';
      return;
    }
    for (const s of data.studies) body.append(row(s, data.reader));
  }

  load();
})();
