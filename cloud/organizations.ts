import Parse from '../schema/parseSdk';
import { CLASS, idOf, organizationRoleName } from '../schema/classes';
import { organizationRecordOf, userOrganizationIdOf } from '../schema/records';
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

/**
 * Decides which organization, workspace and namespace a batch belongs to. Pluggable; whatever it
 * answers must come from the server's own records (never from a field a client can write).
 */
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

/**
 * Creates the role of a saved organization, holding `members`, and records it on the organization
 * (`role`), whose members then read it. Only the master key writes roles and organizations, so the
 * recorded role is the server's record of who belongs; an existing role of that name was made by
 * someone else and is refused rather than adopted.
 */
export async function createOrganizationRole(organization: Parse.Object, members: Parse.User[] = []): Promise<Parse.Role> {
  const role = new Parse.Role(organizationRoleName(idOf(organization)), new Parse.ACL());
  if (members.length) role.getUsers().add(members);
  try {
    await role.save(null, master);
  } catch (error) {
    if ((error as Parse.Error).code !== Parse.Error.DUPLICATE_VALUE) throw error;
    throw new Error(`a role named ${organizationRoleName(idOf(organization))} exists that the server did not create for organization ${idOf(organization)}: refusing to adopt it`, { cause: error });
  }
  const acl = organization.getACL() ?? new Parse.ACL();
  acl.setRoleReadAccess(role, true);
  organization.setACL(acl);
  organization.set('role', role);
  await organization.save(null, master);
  return role;
}

/** Membership by the server's record: the personal organization's owner, or a user in the role recorded on the organization. */
export async function isOrganizationMember(user: Parse.User, organization: Parse.Object): Promise<boolean> {
  const { ownerId, roleId } = organizationRecordOf(organization);
  if (ownerId === idOf(user)) return true;
  if (!roleId) return false;
  const member = await new Parse.Query(Parse.Role)
    .equalTo('objectId', roleId)
    .equalTo('name', organizationRoleName(idOf(organization)))
    .equalTo('users', user)
    .first(master);
  return member !== undefined;
}

/** The user's personal organization, created on first use: its ACL is set on its first save, before its role exists. */
async function personalOrganization(user: Parse.User): Promise<Parse.Object> {
  const { object: organization, created } = await findOrCreateByKey(CLASS.organization, `personal:${idOf(user)}`, () => {
    const org = new Parse.Object(CLASS.organization);
    org.set({ name: `${user.get('username') ?? idOf(user)} (personal)`, owner: user });
    const acl = new Parse.ACL();
    acl.setReadAccess(idOf(user), true);
    org.setACL(acl);
    return org;
  });
  if (created) await createOrganizationRole(organization, [user]);
  return organization;
}

/**
 * The organization the user writes into: `_User.organization` (set by the server or the operator; clients
 * cannot write it) if the user is a member of it, else a personal organization created on first use.
 */
async function resolveOrganization(user: Parse.User): Promise<Parse.Object> {
  // The stored user, not the session's cached copy: the pointer may have changed since the session began.
  const stored = await new Parse.Query(Parse.User).get(idOf(user), master);
  const organizationId = userOrganizationIdOf(stored);
  if (organizationId) {
    const organization = await new Parse.Query(CLASS.organization).get(organizationId, master).catch(() => undefined);
    if (!organization) throw new BatchError(404, 'not_found', `organization ${organizationId} (your _User.organization) not found`);
    if (!(await isOrganizationMember(user, organization))) {
      throw new BatchError(403, 'forbidden', `you are not a member of organization ${organizationId} (your _User.organization): the operator adds members to its role`);
    }
    return organization;
  }
  const organization = await personalOrganization(user);
  stored.set('organization', organization);
  await stored.save(null, master);
  return organization;
}

export const defaultOwnershipResolver: OwnershipResolver = async ({ user, workspaceId, namespace }) => {
  const organization = await resolveOrganization(user);
  let workspace: Parse.Object | undefined;
  if (workspaceId) {
    workspace = await new Parse.Query(CLASS.workspace)
      .equalTo('organization', organization)
      .get(workspaceId, master)
      .catch(() => undefined);
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
