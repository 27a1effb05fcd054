/** Shared organizations, as an operator sets them up. */
import type { stackApi } from '../reliability/stackApi';

const pointer = (className: string, objectId: string) => ({ __type: 'Pointer', className, objectId });

/** The documented way into a shared organization: the operator (master key) adds the user to its role and points the user at it. */
export async function joinOrganization(api: ReturnType<typeof stackApi>, userId: string, organizationId: string): Promise<void> {
  const where = encodeURIComponent(JSON.stringify({ name: `org_${organizationId}` }));
  const role = await api.call(`/parse/roles?where=${where}`, { master: true });
  expect(role.body.results).toHaveLength(1);
  const added = await api.call(`/parse/roles/${role.body.results[0].objectId}`, { method: 'PUT', master: true, body: { users: { __op: 'AddRelation', objects: [pointer('_User', userId)] } } });
  expect(added.status).toBe(200);
  const pointed = await api.call(`/parse/users/${userId}`, { method: 'PUT', master: true, body: { organization: pointer('Organization', organizationId) } });
  expect(pointed.status).toBe(200);
}
