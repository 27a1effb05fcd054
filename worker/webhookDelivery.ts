/**
 * One webhook POST, sent only to an address the network policy allows. The host is resolved here,
 * every address it resolves to is checked, and the request connects to the checked address itself:
 * there is no second lookup that a rebinding DNS server could answer differently. Redirects are
 * never followed (the status is returned as it is).
 */
import dns from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { type IpNetwork, parseIp, restrictedRange } from '../schema/network';

export interface ResolvedAddress {
  address: string;
  family: number;
}

export type HostLookup = (hostname: string) => Promise<ResolvedAddress[]>;

const systemLookup: HostLookup = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

/**
 * The address a webhook to `hostname` (a URL's hostname: a name, an IPv4 address or a bracketed
 * IPv6 one) connects to. Refused when any address it resolves to is restricted: a name that mixes
 * public and private answers is refused, not narrowed to its public half.
 */
export async function webhookAddress(hostname: string, allowedNetworks: readonly IpNetwork[], lookup: HostLookup = systemLookup): Promise<ResolvedAddress> {
  const addresses = await lookup(hostname.replace(/^\[(.*)\]$/, '$1'));
  if (addresses.length === 0) throw new Error(`${hostname} resolves to no address`);
  for (const { address } of addresses) {
    const ip = parseIp(address);
    const range = ip ? restrictedRange(ip, allowedNetworks) : 'not an IP address';
    if (range) throw new Error(`refused before connecting: ${hostname} resolves to ${address}, ${range}`);
  }
  return addresses[0];
}

export interface WebhookPost {
  url: string;
  headers: Record<string, string>;
  body: string;
  allowedNetworks: readonly IpNetwork[];
  timeoutMs: number;
}

/** POSTs the body to the checked address; resolves to the receiver's HTTP status (a 3xx included, not followed). */
export async function postWebhook({ url, headers, body, allowedNetworks, timeoutMs }: WebhookPost): Promise<number> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const { address, family } = await webhookAddress(target.hostname, allowedNetworks);
  return new Promise((resolve, reject) => {
    const request = (secure ? https : http).request(
      {
        host: address,
        family,
        port: target.port || (secure ? 443 : 80),
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        headers: { ...headers, Host: target.host, 'Content-Length': String(Buffer.byteLength(body)) },
        // TLS names and checks the certificate against the host name, not the address connected to.
        ...(secure && !parseIp(target.hostname) ? { servername: target.hostname } : {}),
        agent: false,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}
