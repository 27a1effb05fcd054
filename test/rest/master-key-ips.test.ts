/** The REST route applies PARSE_MASTER_KEY_IPS to the master key, as Parse Server does. */
import { masterKeyIps } from '../../cloud/auth';

test('master key addresses: CIDRs of both families, IPv4-mapped IPv6, single addresses', () => {
  const local = masterKeyIps('127.0.0.1/32,::1/128');
  const office = masterKeyIps('10.0.0.0/8, 192.168.1.7');
  expect(local('127.0.0.1')).toBe(true);
  expect(local('::ffff:127.0.0.1')).toBe(true);
  expect(local('::1')).toBe(true);
  expect(local('10.0.0.5')).toBe(false);
  expect(local('::ffff:10.0.0.5')).toBe(false);
  expect(local(undefined)).toBe(false);
  expect(office('10.20.30.40')).toBe(true);
  expect(office('192.168.1.7')).toBe(true);
  expect(office('192.168.1.8')).toBe(false);
  expect(masterKeyIps('0.0.0.0/0,::/0')('203.0.113.9')).toBe(true);
});
