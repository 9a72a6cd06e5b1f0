// Callout services for the golden cases whose answers come from the case being run. A golden case
// lists the callouts its mapping must make (image, routine, exact argument) and the answer each
// gets; the libraries below hand those answers out in order and note every departure from the
// script, so a case fails when a callout is missing, extra, or called with the wrong argument.
// The routine names are those of check_metermaid.so (spec §7.6) and dns_verify.so (spec §10); the
// arithmetic behind them (MeterMaid counting, DNS) belongs to other issues.

import type { CalloutAnswer, CalloutLibrary, CalloutRoutine, CalloutServices, DomainDirectory } from '../../src/mapping/index.js';
import { FAIL, imageBaseName, succeed } from '../../src/mapping/index.js';
import type { HostedDomain, ScriptedCallout } from './cases-file.js';

export const LIBRARY_ROUTINES: Readonly<Record<string, readonly string[]>> = {
  'check_metermaid.so': ['throttle', 'query', 'store', 'fetch', 'remove', 'adjust', 'test', 'adjust_and_test'],
  'dns_verify.so': ['dns_verify', 'dns_verify_domain_port', 'dns_verify_domain'],
};

/** The callouts and random draws one case expects, consumed as the mapping runs. */
export class Script {
  private readonly callouts: ScriptedCallout[];
  private readonly draws: number[];
  /** Everything that did not go by the script, in order. */
  readonly departures: string[] = [];

  constructor(callouts: readonly ScriptedCallout[], draws: readonly number[]) {
    this.callouts = [...callouts];
    this.draws = [...draws];
  }

  call(image: string, routine: string, arg: string): CalloutAnswer {
    const made = `${image},${routine} ${JSON.stringify(arg)}`;
    const next = this.callouts.shift();
    if (next === undefined) {
      this.departures.push(`unscripted callout ${made}`);
      return FAIL;
    }
    if (next.image !== image || next.routine !== routine || next.arg !== arg) {
      this.departures.push(`callout ${made} where the script expects ${next.image},${next.routine} ${JSON.stringify(next.arg)}`);
      return FAIL;
    }
    return next.answer.ok ? succeed(next.answer.value) : FAIL;
  }

  random(): number {
    const x = this.draws.shift();
    if (x === undefined) {
      this.departures.push('unscripted $?x? random draw');
      return 0.999999;
    }
    return x;
  }

  /** What the script expected but the mapping never asked for. */
  leftovers(): string[] {
    return [
      ...this.callouts.map((c) => `scripted callout not made: ${c.image},${c.routine} ${JSON.stringify(c.arg)}`),
      ...this.draws.map((x) => `scripted random draw not used: ${x}`),
    ];
  }
}

function scriptedLibrary(name: string, routines: readonly string[], script: Script | null): CalloutLibrary {
  const make = (routine: string): CalloutRoutine => ({
    name: routine,
    call: (arg) => (script === null ? FAIL : script.call(name, routine, arg)),
  });
  const table = new Map(routines.map((r) => [r, make(r)]));
  return {
    name,
    claims: (image) => imageBaseName(image) === name,
    routine: (routine) => table.get(routine),
    routineNames: () => routines,
  };
}

/** Hosted domains for `$}domain,attribute{` (spec §3.6). */
export function scriptedDirectory(domains: readonly HostedDomain[]): DomainDirectory {
  const byName = new Map(domains.map((d) => [d.name, d]));
  return {
    domainAttribute(domain, attribute) {
      const d = byName.get(domain.toLowerCase());
      if (d === undefined) return FAIL;
      if (attribute === '_domain_name_' || attribute === '_canonical_name_') return succeed(d.canonical);
      return FAIL;
    },
  };
}

/**
 * Services answering from `script` (null: every routine fails, for files that are only compiled).
 * The directory is offered only when the file declares hosted domains.
 */
export function scriptedServices(script: Script | null, domains: readonly HostedDomain[] = []): CalloutServices {
  const libraries = Object.entries(LIBRARY_ROUTINES).map(([name, routines]) => scriptedLibrary(name, routines, script));
  return domains.length > 0 ? { libraries, directory: scriptedDirectory(domains) } : { libraries };
}
