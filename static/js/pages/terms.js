// The terms of service (#/terms) from GET /api/terms: a small markdown subset (# headings,
// paragraphs, "- " lists) turned into elements whose text is set as text, never as HTML,
// so an operator's file cannot put markup or script into the page.

import { get } from "../api.js";
import { t } from "../i18n.js";
import { clear, h } from "../ui.js";

/** "# A\n\ntext\n- item" -> [h1, p, ul]: every string goes in as a text node. */
export function renderTermsText(text) {
  const blocks = [];
  let para = [];
  let list = null;
  const flush = () => {
    if (para.length) blocks.push(h("p", para.join(" ")));
    para = [];
  };
  for (const raw of String(text).split("\n")) {
    const line = raw.trim();
    const heading = /^(#{1,3})\s+(.*)$/.exec(line);
    const item = /^[-*]\s+(.*)$/.exec(line);
    if (!line) { flush(); list = null; continue; }
    if (heading) {
      flush(); list = null;
      // One h1 per page: the page's own title; the file's levels start at h2 below it.
      blocks.push(h(`h${Math.min(3, heading[1].length + 1)}`, heading[2]));
    } else if (item) {
      flush();
      if (!list) { list = h("ul"); blocks.push(list); }
      list.append(h("li", item[1]));
    } else {
      list = null;
      para.push(line);
    }
  }
  flush();
  return blocks;
}

export async function render(main) {
  const data = await get("/api/terms");
  const blocks = renderTermsText(data.text);
  // The file's first top-level heading is the page's title.
  // The document is the operator's (or the shipped default), in the language it is written in:
  // not from the catalogue.
  const first = blocks[0]?.tagName === "H2" ? blocks.shift().textContent : null;
  clear(main, h("article.card.terms", { "data-testid": "terms", "data-source": data.source },
    first ? h("h1", { "data-i18n-skip": true }, first) : h("h1", t("title.terms")),
    h("div.terms-text", { "data-i18n-skip": true }, ...blocks)));
}
