// The script editor: CodeMirror 6 with JavaScript highlighting, line numbers, search, folding,
// completions for the worker SDK, and diagnostics placed at the node's line:column.
import {
  EditorState, EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, dropCursor, highlightSpecialChars, defaultKeymap, history, historyKeymap,
  indentWithTab, syntaxHighlighting, HighlightStyle, indentOnInput, bracketMatching,
  foldGutter, foldKeymap, javascript, javascriptLanguage, autocompletion, completionKeymap,
  closeBrackets, closeBracketsKeymap, searchKeymap, highlightSelectionMatches, lintGutter,
  setDiagnostics, lintKeymap, tags,
} from "../vendor/codemirror.js";

const SDK = [
  ["logger.info", "logger.info(message, ...data)", "Log a line at INFO"],
  ["logger.warn", "logger.warn(message, ...data)", "Log a line at WARN"],
  ["logger.error", "logger.error(message, ...data)", "Log a line at ERROR"],
  ["logger.debug", "logger.debug(message, ...data)", "Log a line at DEBUG"],
  ["shouldStop", "shouldStop()", "true once the worker is asked to stop"],
  ["signal", "signal", "AbortSignal of this run: aborted, addEventListener('abort', fn)"],
  ["Stels.sleep", "await Stels.sleep(ms)", "Sleep; wakes at once when the worker stops"],
  ["Stels.config", "Stels.config", "{nid, network, title, tick, workers, sid, executionMode, priority, mode, version, leaseEpoch}"],
  ["Stels.config.nid", "Stels.config.nid", "This node's id"],
  ["Stels.config.leaseEpoch", "Stels.config.leaseEpoch", "Fencing number of the leader lease"],
  ["Stels.net.get", "await Stels.net.get(key)", "Cluster KV: {key, value, versionstamp}"],
  ["Stels.net.set", "await Stels.net.set(key, value, {expireIn})", "Cluster KV write"],
  ["Stels.net.delete", "await Stels.net.delete(key)", "Cluster KV delete"],
  ["Stels.net.getMany", "await Stels.net.getMany([key, ...])", "Several entries at once (at most 10), in order"],
  ["Stels.net.list", "Stels.net.list({prefix} | {prefix, start} | {prefix, end} | {start, end}, {limit, reverse, batchSize, cursor})", "Async iterator over entries; iterator.cursor resumes a listing"],
  ["Stels.net.atomic", "Stels.net.atomic().check(entry).set(key, value).commit()", "Atomic update → {ok, versionstamp}; also .delete(key), .mutate({type, key, value})"],
  ["Stels.local.get", "await Stels.local.get(key)", "This node's KV"],
  ["Stels.local.getMany", "await Stels.local.getMany([key, ...])", "Several of this node's entries at once"],
  ["Stels.local.set", "await Stels.local.set(key, value, {expireIn})", "This node's KV write"],
  ["Stels.local.delete", "await Stels.local.delete(key)", "This node's KV delete"],
  ["Stels.local.list", "Stels.local.list({prefix}, {limit, reverse, batchSize, cursor})", "Async iterator over this node's entries"],
  ["Stels.local.atomic", "Stels.local.atomic().check(entry).set(key, value).commit()", "Atomic update of this node's KV"],
  ["Stels.webfix", "await Stels.webfix({brain: Stels.net, method: 'get', channel, module, raw, timestamp})", "KV wrapper storing {channel, module, raw, timestamp}"],
  ["Stels.secrets", "Stels.secrets.NAME", "This worker's secrets (set with 'heterogen secrets set'); masked as *** in logs"],
  ["Stels.startTime", "Stels.startTime", "When the node started, ms since the epoch"],
  ["Stels.wallet", "Stels.wallet", "This node's wallet {publicKey, address, number}"],
  ["Stels.wallet.sign", "Stels.wallet.sign(data)", "Sign a string with the node's key (DER hex)"],
  ["Stels.blockchain.createWallet", "Stels.blockchain.createWallet()", "New wallet {publicKey, privateKey, address, number} (dependency gliesereum)"],
  ["Stels.blockchain.importWallet", "Stels.blockchain.importWallet(privateKeyHex)", "Wallet of a private key"],
  ["Stels.blockchain.validateAddress", "Stels.blockchain.validateAddress(address)", "true for a well-formed Gliesereum address"],
  ["Stels.blockchain.getAddressFromPublicKey", "Stels.blockchain.getAddressFromPublicKey(publicKeyHex)", "Address of a public key"],
  ["Stels.blockchain.verifyPublicKeyAddress", "Stels.blockchain.verifyPublicKeyAddress(publicKeyHex, address)", "Whether the key has that address"],
  ["Stels.blockchain.cardNumber", "Stels.blockchain.cardNumber(address)", "The wallet's 16-digit card number"],
  ["Stels.blockchain.sign", "Stels.blockchain.sign(data, privateKeyHex)", "DER signature, hex"],
  ["Stels.blockchain.verify", "Stels.blockchain.verify(data, signatureHex, publicKeyHex)", "Whether the signature holds"],
  ["Stels.blockchain.createSignedTransaction", "Stels.blockchain.createSignedTransaction(wallet, to, amount, fee, data)", "A signed transaction; Stels.wallet as wallet signs with the node's key"],
  ["Stels.blockchain.validateTransaction", "Stels.blockchain.validateTransaction(tx)", "Whether hash, signature and address hold"],
  ["fetch", "await fetch(url, {method, headers, body, signal})", "HTTP request; failures are network errors"],
  ["WebSocket", "new WebSocket(url, protocols)", "Browser WebSocket: onopen, onmessage, onclose, onerror, send, close"],
  ["setTimeout", "setTimeout(fn, ms, ...args)", "Timer within this run"],
  ["setInterval", "setInterval(fn, ms, ...args)", "Repeating timer within this run"],
  ["structuredClone", "structuredClone(value)", "Deep copy (Date, Map, Set, typed arrays, cycles)"],
  ["URL", "new URL(url, base)", "WHATWG URL with searchParams"],
  ["URLSearchParams", "new URLSearchParams(init)", "Query strings"],
  ["TextEncoder", "new TextEncoder().encode(text)", "UTF-8 bytes of a string"],
  ["TextDecoder", "new TextDecoder().decode(bytes)", "String of UTF-8 bytes"],
  ["crypto.randomUUID", "crypto.randomUUID()", "Random UUID v4"],
  ["crypto.getRandomValues", "crypto.getRandomValues(typedArray)", "Fill with random bytes (at most 65536)"],
  ["AbortController", "new AbortController()", "controller.abort(); controller.signal for fetch"],
  ["AbortSignal.timeout", "AbortSignal.timeout(ms)", "A signal that aborts after ms"],
  ["Deno.memoryUsage", "Deno.memoryUsage()", "This worker's heap {rss, heapTotal, heapUsed, external}"],
  ["Deno.loadavg", "Deno.loadavg()", "The machine's 1, 5, 15 minute load"],
  ["Deno.env.get", "Deno.env.get(name)", "This worker's secret of that name"],
];

function sdkCompletions(context) {
  const word = context.matchBefore(/[\w.$]+/);
  if (!word || (word.from === word.to && !context.explicit)) return null;
  const text = word.text;
  const options = SDK.filter(([label]) => label.startsWith(text) || label.split(".").pop().startsWith(text))
    .map(([label, detail, info]) => ({ label, detail, info, type: label.includes(".") ? "method" : "function" }));
  return options.length ? { from: word.from, options, validFor: /^[\w.$]*$/ } : null;
}

const highlight = HighlightStyle.define([
  { tag: tags.keyword, color: "var(--syn-keyword)" },
  { tag: [tags.string, tags.special(tags.string)], color: "var(--syn-string)" },
  { tag: [tags.number, tags.bool, tags.null], color: "var(--syn-number)" },
  { tag: tags.comment, color: "var(--syn-comment)", fontStyle: "italic" },
  { tag: [tags.function(tags.variableName), tags.function(tags.propertyName)], color: "var(--syn-function)" },
  { tag: tags.propertyName, color: "var(--syn-property)" },
  { tag: [tags.definition(tags.variableName)], color: "var(--syn-definition)" },
  { tag: tags.operator, color: "var(--syn-operator)" },
  { tag: tags.invalid, color: "var(--bad)" },
]);

const theme = EditorView.theme({
  "&": { height: "100%", backgroundColor: "var(--bg-editor)", color: "var(--fg)" },
  ".cm-content": { caretColor: "var(--fg)", fontFamily: "var(--mono)" },
  ".cm-gutters": { backgroundColor: "var(--bg-gutter)", color: "var(--fg-muted)", border: "none" },
  ".cm-activeLine": { backgroundColor: "var(--bg-active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--bg-active-line)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": { backgroundColor: "var(--bg-selection) !important" },
  ".cm-cursor": { borderLeftColor: "var(--fg)" },
  ".cm-tooltip": { backgroundColor: "var(--bg-raised)", color: "var(--fg)", border: "1px solid var(--border)" },
  ".cm-scroller": { overflow: "auto" },
});

/** Creates the editor in `parent`. `onSave` runs on Ctrl/Cmd+S; `onChange` on every edit. */
export function createEditor(host, { doc, onSave, onChange }) {
  // In a shadow root CodeMirror styles itself through a constructed stylesheet; in the document
  // it would add <style> elements, which the Content-Security-Policy (style-src 'self') refuses.
  const shadow = host.attachShadow({ mode: "open" });
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(":host { display: block; } .editor-root { height: 100%; }");
  shadow.adoptedStyleSheets = [sheet];
  const parent = document.createElement("div");
  parent.className = "editor-root";
  shadow.append(parent);
  const view = new EditorView({
    parent,
    root: shadow,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), foldGutter(),
        drawSelection(), dropCursor(), EditorState.allowMultipleSelections.of(true), indentOnInput(),
        syntaxHighlighting(highlight), bracketMatching(), closeBrackets(),
        autocompletion(),
        javascriptLanguage.data.of({ autocomplete: sdkCompletions }),
        highlightActiveLine(), highlightSelectionMatches(), lintGutter(),
        keymap.of([
          { key: "Mod-s", preventDefault: true, run: () => { onSave(); return true; } },
          ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap,
          ...foldKeymap, ...completionKeymap, ...lintKeymap, indentWithTab,
        ]),
        javascript(),
        theme,
        EditorView.contentAttributes.of({ "aria-label": "Script editor" }),
        EditorView.updateListener.of((u) => { if (u.docChanged) onChange?.(); }),
      ],
    }),
  });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
      view.dispatch(setDiagnostics(view.state, []));
    },
    /** Marks a syntax error at 1-based `line` and `column` (clamped to the document). */
    showError(line, column, message) {
      const doc = view.state.doc;
      const l = doc.line(Math.min(Math.max(1, line | 0), doc.lines));
      const from = Math.min(l.from + Math.max(0, (column | 0) - 1), l.to);
      const to = Math.min(from + 1, l.to);
      view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message }]));
      view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
      view.focus();
    },
    clearErrors() {
      view.dispatch(setDiagnostics(view.state, []));
    },
    destroy: () => view.destroy(),
  };
}
