/**
 * Which IP addresses outbound requests (webhooks) may reach. Pure functions, no I/O: the request
 * schema uses them on literal addresses at submit, the worker on every resolved address at delivery.
 * Addresses are parsed strictly (the canonical forms resolvers and the URL parser produce); every
 * other spelling of a host (decimal, hex, octal, short forms, IPv6 variants) is first canonicalised
 * by the WHATWG URL parser, exactly as the worker's request sees it.
 */

export interface IpAddress {
  family: 4 | 6;
  /** The address as a 32- or 128-bit number. */
  value: bigint;
}

export interface IpNetwork extends IpAddress {
  prefix: number;
}

const BITS = { 4: 32, 6: 128 } as const;

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // Dotted decimal only: no leading zeros, which some parsers read as octal.
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return undefined;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseIpv6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = halves.map((half) => (half === '' ? [] : half.split(':')));
  const words: bigint[][] = [];
  for (const [h, half] of groups.entries()) {
    const out: bigint[] = [];
    for (const [i, group] of half.entries()) {
      const lastOfAll = h === groups.length - 1 && i === half.length - 1;
      const ipv4 = lastOfAll && group.includes('.') ? parseIpv4(group) : undefined;
      if (ipv4 !== undefined) out.push(ipv4 >> 16n, ipv4 & 0xffffn);
      else if (/^[0-9a-f]{1,4}$/i.test(group)) out.push(BigInt(`0x${group}`));
      else return undefined;
    }
    words.push(out);
  }
  const count = words.reduce((n, w) => n + w.length, 0);
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const all = halves.length === 1 ? words[0] : [...words[0], ...Array<bigint>(8 - count).fill(0n), ...words[1]];
  return all.reduce((value, word) => (value << 16n) | word, 0n);
}

/** An IPv4 or IPv6 address in canonical text (brackets and a `%zone` suffix allowed), or undefined. */
export function parseIp(text: string): IpAddress | undefined {
  const bare = text.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const v4 = parseIpv4(bare);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = bare.includes(':') ? parseIpv6(bare) : undefined;
  return v6 === undefined ? undefined : { family: 6, value: v6 };
}

/** `address/prefix` (a bare address is a single host), or undefined when malformed. */
export function parseNetwork(cidr: string): IpNetwork | undefined {
  const [text, prefixText, extra] = cidr.trim().split('/');
  const address = parseIp(text);
  if (!address || extra !== undefined) return undefined;
  const bits = BITS[address.family];
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  return prefix > bits ? undefined : { ...address, prefix };
}

export function inNetwork(address: IpAddress, network: IpNetwork): boolean {
  if (address.family !== network.family) return false;
  const shift = BigInt(BITS[network.family] - network.prefix);
  return address.value >> shift === network.value >> shift;
}

function range(cidr: string, name: string): { network: IpNetwork; name: string } {
  return { network: parseNetwork(cidr) as IpNetwork, name: `${name} ${cidr}` };
}

/**
 * Special-purpose ranges (IANA registries) no webhook may reach: none of them is a public receiver,
 * and several are how one reaches a host's own or its network's services under another spelling.
 */
const RESTRICTED_RANGES = [
  range('0.0.0.0/8', 'unspecified (this network)'),
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'CGNAT shared'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local'), // cloud metadata: 169.254.169.254
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'IETF protocol assignments'),
  range('192.0.2.0/24', 'documentation'),
  range('192.88.99.0/24', '6to4 relay'),
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('224.0.0.0/4', 'multicast'),
  range('240.0.0.0/4', 'reserved and broadcast'),
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('::ffff:0:0/96', 'IPv4-mapped'),
  range('::/96', 'IPv4-compatible'),
  range('64:ff9b::/96', 'NAT64'),
  range('64:ff9b:1::/48', 'local NAT64'),
  range('100::/64', 'discard'),
  range('2001::/23', 'IETF protocol assignments'), // Teredo, benchmarking, ORCHID
  range('2001:db8::/32', 'documentation'),
  range('2002::/16', '6to4'),
  range('3fff::/20', 'documentation'),
  range('fc00::/7', 'unique local'), // cloud metadata: fd00:ec2::254
  range('fe80::/10', 'link-local'),
  range('fec0::/10', 'site-local'),
  range('ff00::/8', 'multicast'),
];
const GLOBAL_UNICAST_V6 = parseNetwork('2000::/3') as IpNetwork;

/**
 * Why a webhook may not reach `address` (the restricted range it is in, "loopback 127.0.0.0/8"), or undefined when it may:
 * a public address, or one inside a network the operator allowed (WEBHOOK_ALLOWED_NETWORKS).
 */
export function restrictedRange(address: IpAddress, allowed: readonly IpNetwork[] = []): string | undefined {
  if (allowed.some((network) => inNetwork(address, network))) return undefined;
  const match = RESTRICTED_RANGES.find(({ network }) => inNetwork(address, network));
  if (match) return match.name;
  if (address.family === 6 && !inNetwork(address, GLOBAL_UNICAST_V6)) return 'not global unicast (outside 2000::/3)';
  return undefined;
}
