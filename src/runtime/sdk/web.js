(function (native) {
  "use strict";

  const BODY = Symbol.for("heterogen.body");
  const isObject = (v) => v !== null && (typeof v === "object" || typeof v === "function");

  function domError(message, name) {
    return new DOMException(message, name);
  }

  // structuredClone: the HTML structured clone algorithm for the kinds a script can hold.
  function structuredClone(value, options) {
    if (arguments.length === 0) throw new TypeError("structuredClone: 1 argument required, but only 0 present");
    if (options !== undefined && options !== null && options.transfer !== undefined && options.transfer.length) {
      throw domError("structuredClone: transferring is not supported", "DataCloneError");
    }
    const seen = new Map();
    const clone = (v) => {
      if (!isObject(v)) {
        if (typeof v === "symbol") throw domError("structuredClone: a Symbol cannot be cloned", "DataCloneError");
        return v;
      }
      if (typeof v === "function") {
        throw domError(`structuredClone: ${v.name || "a function"} could not be cloned`, "DataCloneError");
      }
      if (seen.has(v)) return seen.get(v);
      let out;
      if (Array.isArray(v)) {
        out = new Array(v.length);
        seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      }
      if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof Boolean) out = new Boolean(v.valueOf());
      else if (v instanceof Number) out = new Number(v.valueOf());
      else if (v instanceof String) out = new String(v.valueOf());
      else if (typeof BigInt === "function" && v instanceof BigInt) out = Object(v.valueOf());
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) {
        const buffer = clone(v.buffer);
        out = v instanceof DataView
          ? new DataView(buffer, v.byteOffset, v.byteLength)
          : new v.constructor(buffer, v.byteOffset, v.length);
      } else if (v instanceof Map) {
        out = new Map();
        seen.set(v, out);
        for (const [k, x] of v) out.set(clone(k), clone(x));
        return out;
      } else if (v instanceof Set) {
        out = new Set();
        seen.set(v, out);
        for (const x of v) out.add(clone(x));
        return out;
      } else if (v instanceof Error) {
        const kinds = { EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
        const Kind = kinds[v.name] || Error;
        out = new Kind(v.message);
        seen.set(v, out);
        if (v.stack !== undefined) out.stack = String(v.stack);
        if ("cause" in v) out.cause = clone(v.cause);
        return out;
      } else if (v instanceof Promise || v instanceof WeakMap || v instanceof WeakSet || v instanceof WeakRef) {
        throw domError(`structuredClone: ${Object.prototype.toString.call(v)} could not be cloned`, "DataCloneError");
      } else {
        out = {};
        seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      }
      seen.set(v, out);
      return out;
    };
    return clone(value);
  }

  function bytesOf(input, who) {
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeError(`${who}: expected an ArrayBuffer or a view of one`);
  }

  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") {
      return native.utf8Encode(String(input).toWellFormed());
    }
    encodeInto(source, destination) {
      if (!(destination instanceof Uint8Array)) throw new TypeError("TextEncoder.encodeInto: the destination must be a Uint8Array");
      const text = String(source).toWellFormed();
      let read = 0;
      let written = 0;
      for (const ch of text) {
        const bytes = native.utf8Encode(ch);
        if (written + bytes.length > destination.length) break;
        destination.set(bytes, written);
        written += bytes.length;
        read += ch.length;
      }
      return { read, written };
    }
    get [Symbol.toStringTag]() { return "TextEncoder"; }
  }

  const UTF8_LABELS = ["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"];

  class TextDecoder {
    #fatal;
    #ignoreBOM;
    #pending = null;
    #started = false;
    constructor(label = "utf-8", options = {}) {
      const name = String(label).trim().toLowerCase();
      if (!UTF8_LABELS.includes(name)) {
        throw new RangeError(`TextDecoder: the encoding "${label}" is not supported (only utf-8)`);
      }
      this.#fatal = Boolean(options && options.fatal);
      this.#ignoreBOM = Boolean(options && options.ignoreBOM);
    }
    get encoding() { return "utf-8"; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input, options = {}) {
      const stream = Boolean(options && options.stream);
      let bytes = input === undefined ? new Uint8Array(0) : bytesOf(input, "TextDecoder.decode");
      if (this.#pending !== null) {
        const joined = new Uint8Array(this.#pending.length + bytes.length);
        joined.set(this.#pending);
        joined.set(bytes, this.#pending.length);
        bytes = joined;
        this.#pending = null;
      }
      let latin1 = "";
      for (let at = 0; at < bytes.length; at += 8192) {
        latin1 += String.fromCharCode.apply(null, bytes.subarray(at, at + 8192));
      }
      const [text, left] = native.utf8Decode(latin1, this.#fatal, stream);
      if (left > 0) this.#pending = bytes.slice(bytes.length - left);
      let out = text;
      if (!this.#started && out.length > 0) {
        this.#started = true;
        if (!this.#ignoreBOM && out.charCodeAt(0) === 0xfeff) out = out.slice(1);
      }
      if (!stream) {
        this.#started = false;
        this.#pending = null;
      }
      return out;
    }
    get [Symbol.toStringTag]() { return "TextDecoder"; }
  }

  // application/x-www-form-urlencoded, as URLSearchParams serialises it.
  function formEncode(text) {
    return encodeURIComponent(String(text).toWellFormed())
      .replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())
      .replace(/%20/g, "+");
  }
  function formDecode(text) {
    const spaced = text.replace(/\+/g, " ");
    try {
      return decodeURIComponent(spaced);
    } catch {
      return spaced.replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
        try { return decodeURIComponent(run); } catch { return run; }
      });
    }
  }

  const LIST = Symbol("list");
  const UPDATE = Symbol("update");

  class URLSearchParams {
    constructor(init = "") {
      this[LIST] = [];
      this[UPDATE] = null;
      if (typeof init === "object" && init !== null) {
        if (typeof init[Symbol.iterator] === "function") {
          for (const pair of init) {
            const entry = [...pair];
            if (entry.length !== 2) throw new TypeError("URLSearchParams: each pair must have exactly two items");
            this[LIST].push([String(entry[0]), String(entry[1])]);
          }
        } else {
          for (const key of Object.keys(init)) this[LIST].push([key, String(init[key])]);
        }
      } else {
        this._parse(String(init));
      }
    }
    _parse(text) {
      this[LIST] = [];
      const query = text.startsWith("?") ? text.slice(1) : text;
      for (const part of query.split("&")) {
        if (part === "") continue;
        const at = part.indexOf("=");
        const name = at < 0 ? part : part.slice(0, at);
        const value = at < 0 ? "" : part.slice(at + 1);
        this[LIST].push([formDecode(name), formDecode(value)]);
      }
    }
    _changed() {
      if (this[UPDATE] !== null) this[UPDATE](this.toString());
    }
    get size() { return this[LIST].length; }
    append(name, value) { this[LIST].push([String(name), String(value)]); this._changed(); }
    delete(name, value) {
      name = String(name);
      this[LIST] = this[LIST].filter(([n, v]) => !(n === name && (value === undefined || v === String(value))));
      this._changed();
    }
    get(name) {
      name = String(name);
      const found = this[LIST].find(([n]) => n === name);
      return found === undefined ? null : found[1];
    }
    getAll(name) { name = String(name); return this[LIST].filter(([n]) => n === name).map(([, v]) => v); }
    has(name, value) {
      name = String(name);
      return this[LIST].some(([n, v]) => n === name && (value === undefined || v === String(value)));
    }
    set(name, value) {
      name = String(name);
      value = String(value);
      const at = this[LIST].findIndex(([n]) => n === name);
      if (at < 0) this[LIST].push([name, value]);
      else {
        this[LIST][at][1] = value;
        this[LIST] = this[LIST].filter(([n], i) => i <= at || n !== name);
      }
      this._changed();
    }
    sort() {
      this[LIST] = this[LIST]
        .map((entry, i) => [entry, i])
        .sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]))
        .map(([entry]) => entry);
      this._changed();
    }
    forEach(callback, thisArg) {
      for (const [n, v] of this[LIST]) callback.call(thisArg, v, n, this);
    }
    *entries() { for (const [n, v] of this[LIST]) yield [n, v]; }
    *keys() { for (const [n] of this[LIST]) yield n; }
    *values() { for (const [, v] of this[LIST]) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this[LIST].map(([n, v]) => `${formEncode(n)}=${formEncode(v)}`).join("&"); }
    get [Symbol.toStringTag]() { return "URLSearchParams"; }
  }

  const PARTS = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"];

  class URL {
    #parts;
    #query = null;
    constructor(url, base) {
      const parts = native.urlParse(String(url), base === undefined ? undefined : String(base));
      if (parts == null) {
        throw new TypeError(`Invalid URL: '${url}'` + (base === undefined ? "" : ` with base '${base}'`));
      }
      this.#parts = parts;
    }
    static canParse(url, base) {
      return native.urlParse(String(url), base === undefined ? undefined : String(base)) != null;
    }
    static parse(url, base) {
      try { return new URL(url, base); } catch { return null; }
    }
    #set(part, value) {
      this.#parts = native.urlSet(this.#parts[0], part, String(value));
      if (this.#query !== null && part !== "hash") this.#query._parse(this.#parts[9]);
    }
    get searchParams() {
      if (this.#query === null) {
        this.#query = new URLSearchParams(this.#parts[9]);
        this.#query[UPDATE] = (text) => {
          this.#parts = native.urlSet(this.#parts[0], "search", text);
        };
      }
      return this.#query;
    }
    toString() { return this.#parts[0]; }
    toJSON() { return this.#parts[0]; }
    get [Symbol.toStringTag]() { return "URL"; }
    static {
      PARTS.forEach((part, index) => {
        const descriptor = { get() { return this.#parts[index]; }, enumerable: true, configurable: true };
        if (part !== "origin") descriptor.set = function (value) { this.#set(part, value); };
        Object.defineProperty(URL.prototype, part, descriptor);
      });
    }
  }

  const crypto = Object.freeze({
    randomUUID() {
      return native.randomUUID();
    },
    getRandomValues(array) {
      const integer = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
        BigInt64Array, BigUint64Array];
      if (!integer.some((Kind) => array instanceof Kind)) {
        throw domError("crypto.getRandomValues: the argument must be an integer typed array", "TypeMismatchError");
      }
      if (array.byteLength > 65536) {
        throw domError(
          `crypto.getRandomValues: ${array.byteLength} bytes requested; at most 65536 at a time`,
          "QuotaExceededError",
        );
      }
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(native.randomBytes(array.byteLength));
      return array;
    },
    get [Symbol.toStringTag]() { return "Crypto"; },
  });

  class EventTarget {
    #listeners = new Map();
    addEventListener(type, listener, options) {
      if (typeof listener !== "function" && !(isObject(listener) && typeof listener.handleEvent === "function")) return;
      const list = this.#listeners.get(type) || [];
      if (list.some((l) => l.listener === listener)) return;
      list.push({ listener, once: Boolean(isObject(options) && options.once) });
      this.#listeners.set(type, list);
      if (isObject(options) && options.signal instanceof AbortSignal) {
        options.signal.addEventListener("abort", () => this.removeEventListener(type, listener), { once: true });
      }
    }
    removeEventListener(type, listener) {
      const list = this.#listeners.get(type);
      if (list) this.#listeners.set(type, list.filter((l) => l.listener !== listener));
    }
    dispatchEvent(event) {
      const list = (this.#listeners.get(event.type) || []).slice();
      try {
        Object.defineProperty(event, "target", { value: this, configurable: true });
        Object.defineProperty(event, "currentTarget", { value: this, configurable: true });
      } catch {
        // A frozen event keeps its own fields.
      }
      const handler = this["on" + event.type];
      if (typeof handler === "function") list.unshift({ listener: handler, once: false });
      for (const l of list) {
        if (l.once) this.removeEventListener(event.type, l.listener);
        try {
          if (typeof l.listener === "function") l.listener.call(this, event);
          else l.listener.handleEvent(event);
        } catch (error) {
          native.listenerFailed(error);
        }
      }
      return !event.defaultPrevented;
    }
  }

  class Event {
    constructor(type, init = {}) {
      this.type = String(type);
      this.bubbles = Boolean(init.bubbles);
      this.cancelable = Boolean(init.cancelable);
      this.defaultPrevented = false;
      this.timeStamp = Date.now();
    }
    preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
    stopPropagation() {}
    stopImmediatePropagation() {}
  }

  const SIGNAL = Symbol("signal");

  class AbortSignal extends EventTarget {
    constructor(key) {
      if (key !== SIGNAL) throw new TypeError("Illegal constructor: use new AbortController().signal");
      super();
      this.aborted = false;
      this.reason = undefined;
      this.onabort = null;
    }
    throwIfAborted() {
      if (this.aborted) throw this.reason;
    }
    static abort(reason) {
      const controller = new AbortController();
      controller.abort(reason);
      return controller.signal;
    }
    static timeout(ms) {
      const controller = new AbortController();
      native.sleep(Number(ms)).then((elapsed) => {
        if (!elapsed) return;
        controller.abort(domError("The operation timed out", "TimeoutError"));
      });
      return controller.signal;
    }
    static any(signals) {
      const controller = new AbortController();
      for (const signal of signals) {
        if (signal.aborted) {
          controller.abort(signal.reason);
          break;
        }
        signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
      }
      return controller.signal;
    }
    get [Symbol.toStringTag]() { return "AbortSignal"; }
  }

  class AbortController {
    #signal = new AbortSignal(SIGNAL);
    get signal() { return this.#signal; }
    abort(reason) {
      const signal = this.#signal;
      if (signal.aborted) return;
      signal.aborted = true;
      signal.reason = reason === undefined ? domError("This operation was aborted", "AbortError") : reason;
      signal.dispatchEvent(new Event("abort"));
    }
    get [Symbol.toStringTag]() { return "AbortController"; }
  }

  function headerName(name) {
    const text = String(name);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(text)) throw new TypeError(`Headers: invalid header name "${text}"`);
    return text.toLowerCase();
  }
  function headerValue(value) {
    const text = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (/[\0\r\n]/.test(text)) throw new TypeError("Headers: invalid header value");
    return text;
  }

  class Headers {
    #map = new Map();
    constructor(init) {
      if (init === undefined || init === null) return;
      if (init instanceof Headers || typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const entry = [...pair];
          if (entry.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
          this.append(entry[0], entry[1]);
        }
      } else if (typeof init === "object") {
        for (const name of Object.keys(init)) this.append(name, init[name]);
      } else {
        throw new TypeError("Headers: init must be an object or an array of [name, value] pairs");
      }
    }
    append(name, value) {
      const key = headerName(name);
      const text = headerValue(value);
      this.#map.set(key, this.#map.has(key) ? `${this.#map.get(key)}, ${text}` : text);
    }
    set(name, value) { this.#map.set(headerName(name), headerValue(value)); }
    get(name) {
      const value = this.#map.get(headerName(name));
      return value === undefined ? null : value;
    }
    has(name) { return this.#map.has(headerName(name)); }
    delete(name) { this.#map.delete(headerName(name)); }
    #sorted() { return [...this.#map.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); }
    forEach(callback, thisArg) { for (const [n, v] of this.#sorted()) callback.call(thisArg, v, n, this); }
    *entries() { yield* this.#sorted(); }
    *keys() { for (const [n] of this.#sorted()) yield n; }
    *values() { for (const [, v] of this.#sorted()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return "Headers"; }
  }

  function bodyText(body, who) {
    if (body === undefined || body === null) return null;
    if (typeof body === "string") return body;
    if (body instanceof URLSearchParams) return body.toString();
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return new TextDecoder().decode(body);
    throw new TypeError(`${who}: the body must be a string, URLSearchParams or bytes`);
  }

  class Body {
    get bodyUsed() { return false; }
    async text() { return this[BODY] === null ? "" : this[BODY]; }
    async json() { return JSON.parse(await this.text()); }
    async arrayBuffer() { return new TextEncoder().encode(await this.text()).buffer; }
    async bytes() { return new TextEncoder().encode(await this.text()); }
  }

  class Request extends Body {
    constructor(input, init = {}) {
      super();
      const from = input instanceof Request ? input : null;
      this.url = from ? from.url : new URL(String(input)).href;
      this.method = String(init.method ?? (from ? from.method : "GET")).toUpperCase();
      this.headers = new Headers(init.headers ?? (from ? from.headers : undefined));
      this.signal = init.signal ?? (from ? from.signal : new AbortController().signal);
      this[BODY] = init.body !== undefined ? bodyText(init.body, "Request") : from ? from[BODY] : null;
      if (this[BODY] !== null && (this.method === "GET" || this.method === "HEAD")) {
        throw new TypeError("Request: a GET or HEAD request cannot have a body");
      }
      if (init.body instanceof URLSearchParams && !this.headers.has("content-type")) {
        this.headers.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
      }
    }
    clone() { return new Request(this); }
    get [Symbol.toStringTag]() { return "Request"; }
  }

  class Response extends Body {
    constructor(body = null, init = {}) {
      super();
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`Response: status ${init.status} is not in the range 200 to 599`);
      }
      this.status = status;
      this.statusText = init.statusText === undefined ? "" : String(init.statusText);
      this.headers = new Headers(init.headers);
      this.ok = status >= 200 && status <= 299;
      this.url = "";
      this.redirected = false;
      this.type = "default";
      this[BODY] = bodyText(body, "Response");
      if (typeof body === "string" && !this.headers.has("content-type")) {
        this.headers.set("content-type", "text/plain;charset=UTF-8");
      }
    }
    static json(data, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(JSON.stringify(data), { ...init, headers });
    }
    static error() {
      const response = new Response(null, { status: 200 });
      Object.defineProperties(response, { status: { value: 0 }, ok: { value: false }, type: { value: "error" } });
      return response;
    }
    clone() {
      return new Response(this[BODY], { status: this.status, statusText: this.statusText, headers: this.headers });
    }
    get [Symbol.toStringTag]() { return "Response"; }
  }

  return {
    structuredClone,
    TextEncoder,
    TextDecoder,
    URL,
    URLSearchParams,
    crypto,
    Event,
    EventTarget,
    AbortController,
    AbortSignal,
    Headers,
    Request,
    Response,
  };
})
