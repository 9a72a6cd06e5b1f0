// How the mapping engine reaches the world. The engine does no I/O: when a template needs a site
// routine (`$[image,routine,arg]`), a hosted-domain attribute (`$}domain,attr{`), the general
// text database (`${key}`), a URL (`$]url[`) or a sequence number (`$#...#`), evaluation yields a
// CalloutRequest and waits for a CalloutAnswer (evaluate.ts). The host answers from its adapters;
// tests answer from scripts.
//
// Routine libraries are also known at compile time: a callout naming an image or routine that no
// library provides is a configuration error, so an administrator never believes a check is active
// when it is not.

export type CalloutAnswer = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly error?: string };

export const FAIL: CalloutAnswer = { ok: false };

export function succeed(value: string): CalloutAnswer {
  return { ok: true, value };
}

/**
 * One routine of a library, e.g. check_metermaid.so's `throttle`. The answer's value is template
 * text: it is re-expanded (spec §3.6), so a routine that echoes data it did not write itself must
 * double every "$" in it (quoteTemplateText) or the data could set flags.
 */
export interface CalloutRoutine {
  readonly name: string;
  /** Static check of the argument's source text; returns a problem message or undefined. */
  validate?(argSource: string): string | undefined;
  call(arg: string): CalloutAnswer | Promise<CalloutAnswer>;
}

/** A set of routines standing in for one shared library of Messaging Server (e.g. dns_verify.so). */
export interface CalloutLibrary {
  /** The library's file name, e.g. "check_metermaid.so"; used in messages. */
  readonly name: string;
  /** True when a mapping's image specification names this library (any directory prefix). */
  claims(image: string): boolean;
  routine(name: string): CalloutRoutine | undefined;
  routineNames(): readonly string[];
}

/** Hosted-domain attributes for `$}domain,attribute{` (spec §3.6). */
export interface DomainDirectory {
  domainAttribute(domain: string, attribute: string): CalloutAnswer | Promise<CalloutAnswer>;
}

/** The general text database for `${key}`. */
export interface GeneralDatabase {
  lookup(key: string): CalloutAnswer | Promise<CalloutAnswer>;
}

/** URL lookups for `$]url[`. */
export interface UrlResolver {
  resolve(url: string): CalloutAnswer | Promise<CalloutAnswer>;
}

/** Sequence files for `$#file|radix|width|mod#`: increments and returns the formatted counter. */
export interface SequenceStore {
  next(file: string, radix: number, width: number, mod: number): CalloutAnswer | Promise<CalloutAnswer>;
}

/** Everything a host can offer. Services left out make the constructs that need them config errors. */
export interface CalloutServices {
  readonly libraries?: readonly CalloutLibrary[];
  readonly directory?: DomainDirectory;
  readonly general?: GeneralDatabase;
  readonly url?: UrlResolver;
  readonly sequence?: SequenceStore;
}

export type CalloutRequest =
  | { readonly kind: 'routine'; readonly routine: CalloutRoutine; readonly image: string; readonly name: string; readonly arg: string }
  | { readonly kind: 'domain'; readonly domain: string; readonly attribute: string }
  | { readonly kind: 'general'; readonly key: string }
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'sequence'; readonly file: string; readonly radix: number; readonly width: number; readonly mod: number };

/** The last path component of an image specification: "/opt/x/lib/a.so" and "IMTA_LIB:a.so" give "a.so". */
export function imageBaseName(image: string): string {
  const cut = Math.max(image.lastIndexOf('/'), image.lastIndexOf(':'), image.lastIndexOf('\\'));
  return image.slice(cut + 1);
}

/** Doubles every "$" so that text survives re-expansion unchanged. */
export function quoteTemplateText(s: string): string {
  return s.replaceAll('$', '$$$$');
}

/** Answers a request from the services; `undefined` services fail the construct. */
export function answer(services: CalloutServices, req: CalloutRequest): CalloutAnswer | Promise<CalloutAnswer> {
  switch (req.kind) {
    case 'routine':
      return req.routine.call(req.arg);
    case 'domain':
      return services.directory ? services.directory.domainAttribute(req.domain, req.attribute) : FAIL;
    case 'general':
      return services.general ? services.general.lookup(req.key) : FAIL;
    case 'url':
      return services.url ? services.url.resolve(req.url) : FAIL;
    case 'sequence':
      return services.sequence ? services.sequence.next(req.file, req.radix, req.width, req.mod) : FAIL;
  }
}
