// Markdown for cards, rendered to DOM nodes (never innerHTML): raw HTML in a card shows as text.
// Supports headings, paragraphs, **bold**, *italic*, `code`, fenced code, lists, tables, links (http/https) and
// images that name one of the card's images.
import { h } from './dom';

type ImageUrl = (name: string) => string | undefined;

function inline(text: string, image: ImageUrl, used: Set<string>): (Node | string)[] {
  const out: (Node | string)[] = [];
  const re = /!\[([^\]]*)\]\(([^)\s]+)\)|\[([^\]]+)\]\(([^)\s]+)\)|\*\*([^*]+)\*\*|\*([^*]+)\*|`([^`]+)`/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] !== undefined) {
      const url = image(m[2]);
      if (url) {
        used.add(m[2]);
        out.push(h('img', { src: url, alt: m[1] ?? '', class: 'card-image', 'data-name': m[2] }));
      } else out.push(`[image ${m[2]} is not one of the card's images]`);
    } else if (m[4] !== undefined) {
      out.push(/^https?:\/\//.test(m[4]) ? h('a', { href: m[4], rel: 'noopener noreferrer', target: '_blank' }, m[3] ?? '') : (m[3] ?? ''));
    } else if (m[5] !== undefined) out.push(h('strong', {}, m[5]));
    else if (m[6] !== undefined) out.push(h('em', {}, m[6]));
    else if (m[7] !== undefined) out.push(h('code', {}, m[7]));
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export function renderMarkdown(md: string, image: ImageUrl, used: Set<string> = new Set()): HTMLElement {
  const root = h('div', { class: 'markdown' });
  const lines = md.replace(/\r\n/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (/^```/.test(line)) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !/^```/.test(lines[i]!)) body.push(lines[i++]!);
      i++;
      root.append(h('pre', {}, h('code', {}, body.join('\n'))));
      continue;
    }
    const head = /^(#{1,4})\s+(.*)$/.exec(line);
    if (head) {
      const tag = (['h2', 'h3', 'h4', 'h5'] as const)[head[1]!.length - 1]!;
      root.append(h(tag, {}, ...inline(head[2]!, image, used)));
      i++;
      continue;
    }
    if (/^\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\|[\s:|-]+\|\s*$/.test(lines[i + 1]!)) {
      const cells = (l: string) => l.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
      const header = cells(line);
      i += 2;
      const rows: string[][] = [];
      while (i < lines.length && /^\|.*\|\s*$/.test(lines[i]!)) rows.push(cells(lines[i++]!));
      root.append(h('table', {}, h('thead', {}, h('tr', {}, header.map((c) => h('th', {}, ...inline(c, image, used))))), h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, ...inline(c, image, used))))))));
      continue;
    }
    if (/^\s*[-*]\s+/.test(line)) {
      const items: string[] = [];
      while (i < lines.length && /^\s*[-*]\s+/.test(lines[i]!)) items.push(lines[i++]!.replace(/^\s*[-*]\s+/, ''));
      root.append(h('ul', {}, items.map((t) => h('li', {}, ...inline(t, image, used)))));
      continue;
    }
    if (!line.trim()) {
      i++;
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && lines[i]!.trim() && !/^(#{1,4}\s|```|\|)/.test(lines[i]!) && !/^\s*[-*]\s+/.test(lines[i]!)) para.push(lines[i++]!);
    root.append(h('p', {}, ...inline(para.join(' '), image, used)));
  }
  return root;
}
