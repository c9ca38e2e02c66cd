/**
 * README rendering, loaded only on an artifact page that has one: markdown-it with raw HTML off
 * (a README's <script> comes out as text), then DOMPurify over what it made, then rules the CSP
 * needs: no style attributes (markdown-it aligns table cells with them), no image that is not a
 * data: URL (a remote one would be blocked and reported), links that open without a referrer.
 */
import DOMPurify from 'dompurify';
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, typographer: false });

// A table's column alignment as a class rather than markdown-it's style attribute: under the CSP
// even parsing one (DOMPurify's inert document inherits the policy) is reported as a violation.
for (const rule of ['th_open', 'td_open']) {
  md.renderer.rules[rule] = (tokens, idx, options, _env, self) => {
    const t = tokens[idx]!;
    const align = /text-align:\s*(left|right|center)/.exec(String(t.attrGet('style') ?? ''))?.[1];
    t.attrs = (t.attrs ?? []).filter(([k]) => k !== 'style');
    if (align) t.attrJoin('class', `align-${align}`);
    return self.renderToken(tokens, idx, options);
  };
}

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
    FORBID_ATTR: ['style', 'id'],
    USE_PROFILES: { html: true },
  });
}
