// The small mobile pages (the H5 cashier, the sandbox's payer page): escaping and one
// page shell, Chinese first. Each page adds its own few style rules.

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const BASE_STYLE = 'body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:420px;margin:0 auto;padding:24px;color:#222}' +
  'h1{font-size:40px;margin:12px 0}.sub,.muted{color:#888;font-size:13px}.err{color:#c00}';

/** A whole mobile page; `title` and `body` must already be escaped where they carry input. */
export function mobilePage(title: string, body: string, style = ''): string {
  return `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title}</title><style>${BASE_STYLE}${style}</style></head><body>${body}</body></html>`;
}
