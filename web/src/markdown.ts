/**
 * README rendering, loaded only on an artifact page that has one: markdown-it with raw HTML off
 * (a README's <script> comes out as text), then DOMPurify over what it made, then rules the CSP
 * needs: no style attributes (markdown-it aligns table cells with them), no image that is not a
 * data: URL (a remote one would be blocked and reported), links that open without a referrer.
 */
import DOMPurify from 'dompurify';
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, typographer: false });

let hooked = false;

function hook(): void {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      const href = node.getAttribute('href') ?? '';
      // Only web and mail links, and anchors inside the README; anything else stays text.
      if (!/^(https?:|mailto:|#)/i.test(href)) node.removeAttribute('href');
      node.setAttribute('rel', 'noopener noreferrer nofollow');
      if (/^https?:/i.test(href)) node.setAttribute('target', '_blank');
    }
    if (node.tagName === 'IMG') {
      const src = node.getAttribute('src') ?? '';
      if (!/^data:image\/(png|gif|jpeg|webp);/i.test(src)) {
        const alt = node.getAttribute('alt') ?? '';
        node.replaceWith(document.createTextNode(alt ? `[image: ${alt}]` : '[image]'));
      }
    }
  });
}

/** Sanitized HTML for a README's Markdown. */
export function renderMarkdown(markdown: string): string {
  hook();
  return DOMPurify.sanitize(md.render(markdown), {
    FORBID_TAGS: ['style', 'svg', 'math', 'form', 'input', 'button', 'iframe', 'object', 'embed'],
    FORBID_ATTR: ['style', 'class', 'id'],
    USE_PROFILES: { html: true },
  });
}
