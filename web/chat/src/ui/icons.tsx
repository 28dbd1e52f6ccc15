/** Inline SVG icons (emoji depend on fonts the machine may lack). Decorative unless given a label. */

const svg = (label: string | undefined, path: preact.JSX.Element) => (
  <svg
    class="icon"
    viewBox="0 0 24 24"
    width="18"
    height="18"
    fill="none"
    stroke="currentColor"
    stroke-width="2"
    stroke-linecap="round"
    stroke-linejoin="round"
    role={label ? "img" : undefined}
    aria-label={label}
    aria-hidden={label ? undefined : "true"}
  >
    {label && <title>{label}</title>}
    {path}
  </svg>
);

export const PaperclipIcon = ({ label }: { label?: string }) =>
  svg(
    label,
    <path d="M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l8-8" />,
  );

export const LockIcon = ({ label }: { label?: string }) =>
  svg(
    label,
    <>
      <rect x="5" y="11" width="14" height="10" rx="2" />
      <path d="M8 11V7a4 4 0 0 1 8 0v4" />
    </>,
  );

export const DownloadIcon = ({ label }: { label?: string }) =>
  svg(label, <path d="M12 3v12m0 0l-5-5m5 5l5-5M4 21h16" />);
