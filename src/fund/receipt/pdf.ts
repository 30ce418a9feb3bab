// A tiny PDF writer: one A4 page of text lines and rules, in the standard CJK font
// STSong-Light with the UniGB-UCS2-H encoding (text as UCS-2 big-endian hex). The font
// is one of the Adobe CJK fonts every PDF reader supplies, so nothing is embedded.
// Byte offsets in the cross-reference table are exact (the file is ASCII apart from
// the binary comment on line two).
import { assert } from '../../platform/assert.ts';

export interface PdfText { x: number; y: number; size: number; text: string }
export interface PdfRule { x1: number; y1: number; x2: number; y2: number; width?: number }

export const PDF_LINES_MAX = 200;
const TEXT_CHARS_MAX = 400;

/** UCS-2 big-endian hex of the text; characters outside the BMP become '?'. */
export function ucs2Hex(text: string): string {
  let hex = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    hex += (code > 0xffff ? 0x3f : code).toString(16).padStart(4, '0').toUpperCase();
  }
  return hex;
}

const num = (n: number) => (Math.round(n * 100) / 100).toString();

export function writePdf(page: { texts: PdfText[]; rules?: PdfRule[]; title?: string }): Buffer {
  assert(page.texts.length + (page.rules?.length ?? 0) <= PDF_LINES_MAX, 'pdf page within limit');
  let content = '';
  for (const r of page.rules ?? []) content += `${num(r.width ?? 0.8)} w ${num(r.x1)} ${num(r.y1)} m ${num(r.x2)} ${num(r.y2)} l S\n`;
  for (const t of page.texts) {
    assert([...t.text].length <= TEXT_CHARS_MAX, 'pdf text line within limit');
    content += `BT /F1 ${num(t.size)} Tf ${num(t.x)} ${num(t.y)} Td <${ucs2Hex(t.text)}> Tj ET\n`;
  }
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>',
    '<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [6 0 R] >>',
    `<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}endstream`,
    '<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 7 0 R /DW 1000 /W [1 95 500] >>',
    '<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>',
    `<< /Producer (Custos) /Title <FEFF${ucs2Hex(page.title ?? 'receipt')}> >>`,
  ];
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n%', 'latin1'), Buffer.from([0xe2, 0xe3, 0xcf, 0xd3, 0x0a])];
  let offset = parts.reduce((n, b) => n + b.length, 0);
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(offset);
    const chunk = Buffer.from(`${i + 1} 0 obj\n${body}\nendobj\n`, 'latin1');
    parts.push(chunk);
    offset += chunk.length;
  });
  let xref = `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) xref += `${o.toString().padStart(10, '0')} 00000 n \n`;
  xref += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info ${objects.length} 0 R >>\nstartxref\n${offset}\n%%EOF\n`;
  parts.push(Buffer.from(xref, 'latin1'));
  return Buffer.concat(parts);
}
