import Parse from 'parse/node';
import { CLASS, idOf, organizationRoleName } from '../schema/classes';
import { BatchError } from './errors';

export interface BatchOwnership {
  organization: Parse.Object;
  workspace?: Parse.Object;
  namespace?: Parse.Object;
}

export interface OwnershipRequest {
  user: Parse.User;
  workspaceId?: string;
  namespace?: string;
}

/** Decides which organization, workspace and namespace a batch belongs to. Pluggable. */
export type OwnershipResolver = (request: OwnershipRequest) => Promise<BatchOwnership>;

const master = { useMasterKey: true };

/** Saves a new object under a unique `key`, or returns the one a concurrent request saved first. */
async function findOrCreateByKey(className: string, key: string, create: () => Parse.Object): Promise<{ object: Parse.Object; created: boolean }> {
  const existing = await new Parse.Query(className).equalTo('key', key).first(master);
  if (existing) return { object: existing, created: false };
  const object = create();
  object.set('key', key);
  try {
    return { object: await object.save(null, master), created: true };
  } catch (error) {
    if ((error as Parse.Error).code !== Parse.Error.DUPLICATE_VALUE) throw error;
    const winner = await new Parse.Query(className).equalTo('key', key).first(master);
    if (!winner) throw error;
    return { object: winner, created: false };
  }
}

function membersReadACL(organizationId: string): Parse.ACL {
  const acl = new Parse.ACL();
  acl.setRoleReadAccess(organizationRoleName(organizationId), true);
  return acl;
}

/** The user's `organization`, or a personal organization created on first use with a role holding the user. */
async function resolveOrganization(user: Parse.User): Promise<Parse.Object> {
  const pointer = user.get('organization') as Parse.Object | undefined;
  if (pointer) return pointer.fetch(master);
  const { object: organization, created } = await findOrCreateByKey(CLASS.organization, `personal:${idOf(user)}`, () => {
    const org = new Parse.Object(CLASS.organization);
    org.set({ name: `${user.get('username') ?? idOf(user)} (personal)`, owner: user });
    return org;
  });
  if (created) {
    const acl = membersReadACL(idOf(organization));
    acl.setReadAccess(idOf(user), true);
    organization.setACL(acl);
    await organization.save(null, master);
    const role = new Parse.Role(organizationRoleName(idOf(organization)), new Parse.ACL());
    role.getUsers().add(user);
    await role.save(null, master).catch((error: Parse.Error) => {
      if (error.code !== Parse.Error.DUPLICATE_VALUE) throw error;
    });
  }
  user.set('organization', organization);
  await user.save(null, master);
  return organization;
}

export const defaultOwnershipResolver: OwnershipResolver = async ({ user, workspaceId, namespace }) => {
  const organization = await resolveOrganization(user);
  let workspace: Parse.Object | undefined;
  if (workspaceId) {
    workspace = await new Parse.Query(CLASS.workspace).equalTo('organization', organization).get(workspaceId, master).catch(() => undefined);
    if (!workspace) {
      throw new BatchError(400, 'invalid_request', `workspace_id "${workspaceId}" is not a workspace of your organization`, [
        { path: 'workspace_id', field: 'workspace_id', message: 'is not a workspace of your organization' },
      ]);
    }
  }
  let namespaceObject: Parse.Object | undefined;
  if (namespace) {
    const key = `${idOf(organization)}:${workspace ? idOf(workspace) : ''}:${namespace}`;
    ({ object: namespaceObject } = await findOrCreateByKey(CLASS.namespace, key, () => {
      const ns = new Parse.Object(CLASS.namespace);
      ns.set({ name: namespace, organization, ...(workspace ? { workspace } : {}) });
      ns.setACL(membersReadACL(idOf(organization)));
      return ns;
    }));
  }
  return { organization, ...(workspace ? { workspace } : {}), ...(namespaceObject ? { namespace: namespaceObject } : {}) };
};
