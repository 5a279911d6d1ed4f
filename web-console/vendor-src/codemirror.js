// Everything the console's editor uses from CodeMirror 6, bundled into one ES module.
export { EditorState, StateEffect, StateField, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, dropCursor, rectangularSelection, crosshairCursor, highlightSpecialChars,
  Decoration, placeholder,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  syntaxHighlighting, defaultHighlightStyle, HighlightStyle, indentOnInput, bracketMatching,
  foldGutter, foldKeymap,
} from "@codemirror/language";
export { javascript, javascriptLanguage } from "@codemirror/lang-javascript";
export {
  autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap,
} from "@codemirror/autocomplete";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export { linter, lintGutter, setDiagnostics, lintKeymap } from "@codemirror/lint";
export { tags } from "@lezer/highlight";
