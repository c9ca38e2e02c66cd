import { render } from 'preact';
import { App } from './app.js';
import { savedTheme } from './theme.js';
import './styles.css';

// The theme picked with the toggle, before the first paint of the app (the CSS follows the system otherwise).
const t = savedTheme();
if (t) document.documentElement.dataset.theme = t;

render(<App />, document.getElementById('app')!);
