// The postmortem template as one HTML page (for a wiki or a mail), rendered from its Markdown by
// markdown-it with raw HTML off: text from people or from outside never becomes markup.
import MarkdownIt from 'markdown-it';

const STYLE = `body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}em{color:#7a5b00}`;

export function postmortemHtml(markdown: string, title: string): string {
  const markdownIt = new MarkdownIt({ html: false, linkify: false });
  const escapedTitle = markdownIt.utils.escapeHtml(title);
  return [
    '<!doctype html>',
    '<html lang="en">',
    `<head><meta charset="utf-8"><title>${escapedTitle}</title><style>${STYLE}</style></head>`,
    `<body>${markdownIt.render(markdown)}</body>`,
    '</html>',
    '',
  ].join('\n');
}
