// The serving version's example photos (GET /model's `examples`): one button each, which
// classifies that photo like an upload, and each photo's credit (author, source, licence) under
// them, as its licence asks. A version without examples shows nothing.

import { call, element } from "/web/api.js";

// Only http(s) addresses become links: the credit lines come from a dataset's LICENSE.txt.
function safeLink(text) {
  try {
    const url = new URL(text);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

// "CC-BY by martinak15 - https://www.flickr.com/…" -> the author's part, and a link to the source.
function creditOf(example, number) {
  const [who, address] = example.credit.split(/ - (?=\S+$)/);
  const href = address ? safeLink(address) : null;
  const label = `${number}. ${example.class_name}: ${who}`;
  return element("li", {}, href ? [element("a", { href, rel: "noopener noreferrer", text: label })] : [label]);
}

export function showExamples(examples, pick) {
  const section = document.getElementById("examples");
  const list = section.querySelector(".example-list");
  const credits = section.querySelector(".example-credits");
  list.replaceChildren();
  credits.replaceChildren();
  section.hidden = !examples.length;
  examples.forEach((example, index) => {
    const number = index + 1;
    const button = element("button", { type: "button", class: "example", "aria-label": `Classify example ${number}. ${example.class_name}` }, [
      element("img", { src: example.url, alt: "", width: "96", height: "96", loading: "lazy" }),
      element("span", { class: "small", text: `${number}. ${example.class_name}` }),
    ]);
    button.addEventListener("click", async () => {
      button.disabled = true;
      const answer = await call(example.url, { as: "blob", retries: 2 });
      button.disabled = false;
      if (answer.ok) {
        pick(new File([answer.data], `example ${number} (${example.class_name}).jpg`, { type: "image/jpeg" }));
      } else {
        document.getElementById("status").textContent = `Example ${number} could not be fetched (HTTP ${answer.status}): ${answer.message}`;
      }
    });
    list.append(element("li", {}, [button]));
    credits.append(creditOf(example, number));
  });
  const license = examples.find((example) => example.license)?.license;
  const licenseLink = license && safeLink(license);
  section.querySelector(".example-license").replaceChildren(
    ...(licenseLink ? ["Photos under ", element("a", { href: licenseLink, rel: "noopener noreferrer", text: "their licence" }), ", by:"] : ["Photos by:"]),
  );
}
