// Definitions: export (download GET /api/definitions as a file) and import (upload a file,
// POST /api/definitions), in RabbitMQ's JSON format.

import * as api from '../api.js';
import { h, note, section, flash, flashError } from '../ui.js';

export default async function render({ main }) {
  const exportButton = h('button', { type: 'button', id: 'export-definitions' }, 'Download broker definitions');
  const exportResult = h('div', { id: 'export-result' });
  exportButton.addEventListener('click', async () => {
    try {
      const definitions = await api.get('/definitions');
      const blob = new Blob([JSON.stringify(definitions, null, 2)], { type: 'application/json' });
      const url = URL.createObjectURL(blob);
      const stamp = new Date().toISOString().slice(0, 10);
      const link = h('a', { href: url, download: `warren-definitions-${stamp}.json`, id: 'definitions-download' }, 'Save the file');
      exportResult.replaceChildren(link);
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      flashError(error);
    }
  });

  const file = h('input', { type: 'file', accept: 'application/json,.json', id: 'definitions-file' });
  const importResult = h('div', { id: 'import-result' });
  const importButton = h('button', { type: 'button', id: 'import-definitions' }, 'Upload broker definitions');
  importButton.addEventListener('click', async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) { importResult.replaceChildren(note('Choose a definitions file first.', 'error')); return; }
    let parsed;
    try { parsed = JSON.parse(await chosen.text()); } catch (e) {
      importResult.replaceChildren(note(`${chosen.name} is not JSON: ${e.message}`, 'error'));
      return;
    }
    if (!window.confirm(`Import the definitions in ${chosen.name}? Existing objects are kept; new ones are added.`)) return;
    importButton.disabled = true;
    try {
      await api.post('/definitions', parsed);
      importResult.replaceChildren(note(`Imported ${chosen.name}.`, 'ok'));
      flash('Definitions imported.');
    } catch (error) {
      importResult.replaceChildren(note(`Import failed: ${error.message}`, 'error'));
    } finally {
      importButton.disabled = false;
    }
  });

  main.append(h('h1', {}, 'Definitions'),
    note('Users, virtual hosts, permissions, policies, exchanges, queues and bindings, in the JSON format of RabbitMQ (rabbitmqctl export_definitions).'),
    section('Export', exportButton, exportResult),
    section('Import', h('div', { class: 'inline-form' }, file, importButton), importResult));
}
