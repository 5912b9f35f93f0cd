//! The generic netlink controller (`nlctrl`): a family's id and multicast groups by name
//! (include/uapi/linux/genetlink.h, net/netlink/genetlink.c `ctrl_getfamily`).

use super::wire::{self, MessageBuilder, WireError, NLM_F_REQUEST};

/// `GENL_ID_CTRL`: the controller's fixed family id.
pub const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_NEWFAMILY: u8 = 1;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;

/// A generic netlink family as the controller describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Its dynamic id (the `nlmsg_type` of its messages).
    pub id: u16,
    /// Its multicast groups: name and id.
    pub groups: Vec<(String, u32)>,
}

impl Family {
    /// The id of the group called `name`.
    pub fn group(&self, name: &str) -> Option<u32> {
        self.groups.iter().find(|(n, _)| n == name).map(|g| g.1)
    }
}

/// `CTRL_CMD_GETFAMILY` for `name`.
pub fn get_family(seq: u32, name: &str) -> Vec<u8> {
    MessageBuilder::new(GENL_ID_CTRL, NLM_F_REQUEST, seq, 0)
        .genl(CTRL_CMD_GETFAMILY, 1)
        .str(CTRL_ATTR_FAMILY_NAME, name)
        .finish()
}

/// The family in the controller's answer; the kernel's errno when it refused (`ENOENT`: no
/// such family, e.g. a kernel without devlink).
pub fn parse_family(buf: &[u8]) -> Result<Family, WireError> {
    for m in wire::messages(buf)? {
        if let Some(e) = m.errno()? {
            if e != 0 {
                return Err(WireError::Errno(e));
            }
            continue;
        }
        if m.kind != GENL_ID_CTRL {
            continue;
        }
        let g = m.genl()?;
        if g.cmd != CTRL_CMD_NEWFAMILY {
            continue;
        }
        let mut id = None;
        let mut groups = Vec::new();
        for a in wire::attrs(g.attrs)? {
            match a.kind {
                CTRL_ATTR_FAMILY_ID => id = Some(a.u16("CTRL_ATTR_FAMILY_ID")?),
                CTRL_ATTR_MCAST_GROUPS => {
                    for grp in a.nested()? {
                        let (mut name, mut gid) = (None, None);
                        for f in grp.nested()? {
                            match f.kind {
                                CTRL_ATTR_MCAST_GRP_NAME => {
                                    name = Some(f.str("CTRL_ATTR_MCAST_GRP_NAME")?.to_owned());
                                }
                                CTRL_ATTR_MCAST_GRP_ID => {
                                    gid = Some(f.u32("CTRL_ATTR_MCAST_GRP_ID")?);
                                }
                                _ => {}
                            }
                        }
                        if let (Some(n), Some(i)) = (name, gid) {
                            groups.push((n, i));
                        }
                    }
                }
                _ => {}
            }
        }
        let id = id.ok_or(WireError::Missing("CTRL_ATTR_FAMILY_ID"))?;
        return Ok(Family { id, groups });
    }
    Err(WireError::Missing("CTRL_CMD_NEWFAMILY"))
}

/// The controller's answer describing `family` (fixtures, the simulated host).
pub fn family_reply(seq: u32, name: &str, family: &Family) -> Vec<u8> {
    let b = MessageBuilder::new(GENL_ID_CTRL, 0, seq, 0)
        .genl(CTRL_CMD_NEWFAMILY, 2)
        .str(CTRL_ATTR_FAMILY_NAME, name)
        .u16(CTRL_ATTR_FAMILY_ID, family.id);
    let (mut b, groups) = b.nest(CTRL_ATTR_MCAST_GROUPS);
    for (i, (n, id)) in family.groups.iter().enumerate() {
        let (g, at) = b.nest(u16::try_from(i + 1).unwrap_or(u16::MAX));
        b = g
            .u32(CTRL_ATTR_MCAST_GRP_ID, *id)
            .str(CTRL_ATTR_MCAST_GRP_NAME, n)
            .end_nest(at);
    }
    b.end_nest(groups).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_reply_round_trips() {
        let f = Family {
            id: 0x15,
            groups: vec![("config".into(), 5)],
        };
        let parsed = parse_family(&family_reply(1, "devlink", &f)).unwrap();
        assert_eq!(parsed, f);
        assert_eq!(parsed.group("config"), Some(5));
    }

    #[test]
    fn an_unknown_family_is_its_errno() {
        let e = parse_family(&wire::error(1, 0, 2)).unwrap_err();
        assert_eq!(e, WireError::Errno(-2));
    }
}
