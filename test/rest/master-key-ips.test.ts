/** The REST route applies PARSE_MASTER_KEY_IPS to the master key, as Parse Server does. */
import { masterKeyIpAllowed } from '../../cloud/router';

test('master key addresses: CIDRs of both families, IPv4-mapped IPv6, single addresses', () => {
  const local = '127.0.0.1/32,::1/128';
  expect(masterKeyIpAllowed(local, '127.0.0.1')).toBe(true);
  expect(masterKeyIpAllowed(local, '::ffff:127.0.0.1')).toBe(true);
  expect(masterKeyIpAllowed(local, '::1')).toBe(true);
  expect(masterKeyIpAllowed(local, '10.0.0.5')).toBe(false);
  expect(masterKeyIpAllowed(local, '::ffff:10.0.0.5')).toBe(false);
  expect(masterKeyIpAllowed(local, undefined)).toBe(false);
  expect(masterKeyIpAllowed('10.0.0.0/8, 192.168.1.7', '10.20.30.40')).toBe(true);
  expect(masterKeyIpAllowed('10.0.0.0/8, 192.168.1.7', '192.168.1.7')).toBe(true);
  expect(masterKeyIpAllowed('10.0.0.0/8, 192.168.1.7', '192.168.1.8')).toBe(false);
  expect(masterKeyIpAllowed('0.0.0.0/0,::/0', '203.0.113.9')).toBe(true);
});
