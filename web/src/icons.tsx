/**
 * The UI's icons: simple shapes drawn here as inline SVG (no icon font, nothing fetched). Each is
 * decorative (aria-hidden): the text beside it, or the button's label, says what it means.
 */
import type { ComponentChildren, JSX } from 'preact';

function Svg({ children, size = 18, class: cls }: { children: ComponentChildren; size?: number; class?: string }): JSX.Element {
  return (
    <svg
      class={`icon${cls ? ` ${cls}` : ''}`}
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      stroke-width="1.8"
      stroke-linecap="round"
      stroke-linejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      {children}
    </svg>
  );
}

type IconProps = { size?: number; class?: string };

const shapes: Record<string, () => JSX.Element> = {
  // A shipping container: the image.
  image: () => (
    <>
      <rect x="3" y="6" width="18" height="12" rx="1.5" />
      <path d="M7 9v6M11 9v6M15 9v6M19 9v6" />
    </>
  ),
  'image-index': () => (
    <>
      <rect x="5" y="3" width="16" height="10" rx="1.5" />
      <rect x="3" y="11" width="16" height="10" rx="1.5" />
      <path d="M7 14v4M11 14v4M15 14v4" />
    </>
  ),
  // A ship's wheel.
  'helm-chart': () => (
    <>
      <circle cx="12" cy="12" r="5" />
      <circle cx="12" cy="12" r="1.5" />
      <path d="M12 2v5M12 17v5M2 12h5M17 12h5M4.9 4.9l3.6 3.6M15.5 15.5l3.6 3.6M4.9 19.1l3.6-3.6M15.5 8.5l3.6-3.6" />
    </>
  ),
  'terraform-module': () => (
    <path d="M4 3l6 3.5v7L4 10zM11 7l6 3.5v7L11 14zM18 10.5l3-1.8v7l-3 1.8zM11 15l6 3.5V22l-6-3.5z" />
  ),
  // Nodes of a small network.
  'ml-model': () => (
    <>
      <circle cx="5" cy="6" r="2" />
      <circle cx="5" cy="18" r="2" />
      <circle cx="12" cy="12" r="2" />
      <circle cx="19" cy="6" r="2" />
      <circle cx="19" cy="18" r="2" />
      <path d="M7 7l3.3 3.7M7 17l3.3-3.7M13.7 10.7L17 7M13.7 13.3L17 17" />
    </>
  ),
  // A list on a page.
  sbom: () => (
    <>
      <path d="M6 2h9l4 4v16H6z" />
      <path d="M15 2v4h4M9 11h7M9 15h7M9 19h4" />
    </>
  ),
  // A seal with a tick.
  signature: () => (
    <>
      <path d="M12 2l8 3v6c0 5-3.5 9-8 11-4.5-2-8-6-8-11V5z" />
      <path d="M8.5 12l2.5 2.5 4.5-5" />
    </>
  ),
  // A clipboard with a tick.
  attestation: () => (
    <>
      <rect x="5" y="4" width="14" height="18" rx="2" />
      <path d="M9 2h6v4H9zM9 14l2 2 4-4" />
    </>
  ),
  // A globe.
  stac: () => (
    <>
      <circle cx="12" cy="12" r="9" />
      <path d="M3 12h18M12 3c3 3 3 15 0 18M12 3c-3 3-3 15 0 18" />
    </>
  ),
  wasm: () => (
    <>
      <path d="M12 2l8.5 5v10L12 22l-8.5-5V7z" />
      <path d="M8 10l1.5 5 2.5-4 2.5 4 1.5-5" />
    </>
  ),
  generic: () => (
    <>
      <path d="M6 2h9l4 4v16H6z" />
      <path d="M15 2v4h4" />
    </>
  ),
  file: () => (
    <>
      <path d="M6 2h9l4 4v16H6z" />
      <path d="M15 2v4h4" />
    </>
  ),
  folder: () => <path d="M3 6a1 1 0 011-1h5l2 2h9a1 1 0 011 1v10a1 1 0 01-1 1H4a1 1 0 01-1-1z" />,
  link: () => <path d="M10 14a4 4 0 005.7 0l3-3a4 4 0 00-5.7-5.7l-1 1M14 10a4 4 0 00-5.7 0l-3 3a4 4 0 005.7 5.7l1-1" />,
  search: () => (
    <>
      <circle cx="11" cy="11" r="6.5" />
      <path d="M16 16l5 5" />
    </>
  ),
  copy: () => (
    <>
      <rect x="8" y="8" width="12" height="13" rx="2" />
      <path d="M16 8V5a2 2 0 00-2-2H6a2 2 0 00-2 2v10a2 2 0 002 2h2" />
    </>
  ),
  check: () => <path d="M5 12.5l4.5 4.5L19 7" />,
  download: () => <path d="M12 3v12M7 10l5 5 5-5M4 20h16" />,
  trash: () => <path d="M4 7h16M9 7V4h6v3M6 7l1 14h10l1-14M10 11v6M14 11v6" />,
  sun: () => (
    <>
      <circle cx="12" cy="12" r="4" />
      <path d="M12 2v2M12 20v2M2 12h2M20 12h2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4" />
    </>
  ),
  moon: () => <path d="M20 14.5A8 8 0 119.5 4a6.5 6.5 0 0010.5 10.5z" />,
  user: () => (
    <>
      <circle cx="12" cy="8" r="4" />
      <path d="M4 21c1-4.5 4.5-6.5 8-6.5s7 2 8 6.5" />
    </>
  ),
  chevron: () => <path d="M9 6l6 6-6 6" />,
  chart: () => <path d="M4 20V4M4 20h16M8 16l4-5 3 3 5-7" />,
  shield: () => <path d="M12 2l8 3v6c0 5-3.5 9-8 11-4.5-2-8-6-8-11V5z" />,
  history: () => (
    <>
      <path d="M3 12a9 9 0 103-6.7L3 8" />
      <path d="M3 3v5h5M12 7v5l3 2" />
    </>
  ),
  logo: () => (
    <>
      <path d="M2 17h20l-2 4H4z" />
      <path d="M5 17V9h6v8M13 17V5h6v12M7 12h2M15 8h2M15 12h2" />
    </>
  ),
};

/** The server's icon names (KindInfo.icon) beside the kinds' own. */
const ALIASES: Record<string, string> = { helm: 'helm-chart', terraform: 'terraform-module', model: 'ml-model', artifact: 'generic', index: 'image-index' };

function shapeOf(name: string): (() => JSX.Element) | undefined {
  const key = ALIASES[name] ?? (name.startsWith('sbom') ? 'sbom' : name.startsWith('signature') ? 'signature' : name);
  return shapes[key];
}

/** The icon of a kind or a UI action; an unknown name draws `fallback`'s, else the generic file. */
export function Icon({ name, fallback, ...props }: IconProps & { name: string; fallback?: string }): JSX.Element {
  const shape = shapeOf(name) ?? (fallback ? shapeOf(fallback) : undefined) ?? shapes.generic!;
  return <Svg {...props}>{shape()}</Svg>;
}
