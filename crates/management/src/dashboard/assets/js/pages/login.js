// Login: checks the user and password with /api/whoami, then keeps them for the tab's life.

import * as api from '../api.js';
import { h, field, note } from '../ui.js';

export default async function render({ main, done }) {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password' });
  const message = h('div', { class: 'message' });
  const form = h('form', { id: 'login', class: 'login' },
    h('h1', {}, 'Log in to Warren'), field('Username', user), field('Password', password),
    h('button', { type: 'submit' }, 'Log in'), message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    api.login(user.value, password.value);
    try {
      const me = await api.whoami();
      api.setTags(me && me.tags);
      done();
    } catch (error) {
      api.logout();
      message.replaceChildren(note(error.status === 401 ? `Login failed: ${error.message}` : error.message, 'error'));
    }
  });
  main.replaceChildren(form);
  user.focus();
}
