//! libvirt's live domain XML (`/run/libvirt/qemu/<name>.xml`): the domain's name, UUID, QEMU
//! pid, OpenStack Nova's metadata when present (`<metadata><nova:instance>`: the instance's
//! name and project), and every PCI function it holds (`<hostdev>`, `<interface type='hostdev'>`, and the VF a
//! `<forward mode='hostdev'>` network pool chose, in `<actual type='hostdev'>`).

use vfguard_model::Bdf;

/// What one domain's live XML says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveDomain {
    /// `<name>`.
    pub name: Option<String>,
    /// `<uuid>`.
    pub uuid: Option<String>,
    /// `<domstatus pid=...>`: the QEMU process.
    pub pid: Option<u32>,
    /// PCI functions assigned to it.
    pub hostdevs: Vec<Bdf>,
    /// `<metadata><nova:instance><nova:name>`: the instance's name in OpenStack.
    pub nova_name: Option<String>,
    /// `<nova:owner><nova:project>`: its project's name.
    pub nova_project: Option<String>,
    /// That project's `uuid` attribute.
    pub nova_project_uuid: Option<String>,
}

/// Elements nested deeper than this are refused (libxml2's `xmlParserMaxDepth`, which libvirt
/// itself parses with; its own files nest about ten deep).
pub const MAX_DEPTH: usize = 256;

/// Why an XML file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not libvirt domain XML: {0}")]
pub struct LibvirtXmlError(String);

/// An element on the way down to the one being read: its name and its `type` attribute (the
/// only attribute that decides anything on the way).
struct Open {
    name: String,
    kind: Option<String>,
}

/// Parses a domain or domstatus document.
///
/// # Design
/// A streaming parser (quick-xml) with an explicit stack of open elements: memory and stack stay
/// bounded whatever the input, and a document nested deeper than [`MAX_DEPTH`] is refused with
/// a reason (a tree parser recursed once per level: 4000 levels overflowed the agent thread's
/// stack at every start).
pub fn parse_domain_xml(text: &str) -> Result<LiveDomain, LibvirtXmlError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut out = LiveDomain::default();
    let mut root_seen = false;
    // The text of the `<name>` or `<uuid>` being read.
    let mut text: Option<String> = None;
    let wanted = |stack: &[Open]| {
        matches!(
            in_domain(stack).map(names).as_deref(),
            Some(
                ["name" | "uuid"]
                    | ["metadata", "instance", "name"]
                    | ["metadata", "instance", "owner", "project"]
            )
        )
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| LibvirtXmlError(format!("at byte {}: {e}", reader.error_position())))?;
        match event {
            Event::Start(e) => enter(&mut stack, &mut out, &mut root_seen, &e)?,
            Event::Empty(e) => {
                enter(&mut stack, &mut out, &mut root_seen, &e)?;
                stack.pop();
            }
            Event::End(_) => {
                if let Some(v) = text.take() {
                    let field = match in_domain(&stack).map(names).as_deref() {
                        Some(["name"]) => &mut out.name,
                        Some(["uuid"]) => &mut out.uuid,
                        Some(["metadata", "instance", "name"]) => &mut out.nova_name,
                        Some(["metadata", "instance", "owner", "project"]) => &mut out.nova_project,
                        _ => &mut None,
                    };
                    if field.is_none() {
                        *field = Some(v.trim().to_owned());
                    }
                }
                stack.pop();
            }
            // A name's text comes in pieces: text, then each entity (`&amp;`) on its own.
            Event::Text(t) if wanted(&stack) => {
                let piece: &str = &t;
                text.get_or_insert_with(String::new).push_str(piece);
            }
            Event::GeneralRef(r) if wanted(&stack) => {
                let name: &str = &r;
                let piece = match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => r.resolve_char_ref().ok().flatten(),
                };
                match piece {
                    Some(c) => text.get_or_insert_with(String::new).push(c),
                    None => {
                        return Err(LibvirtXmlError(format!("unknown entity &{name};")));
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err(LibvirtXmlError("no root element".into()));
    }
    Ok(out)
}

/// Opens element `e`: checks the root and the depth, and reads a function's address when `e`
/// is one.
fn enter(
    stack: &mut Vec<Open>,
    out: &mut LiveDomain,
    root_seen: &mut bool,
    e: &quick_xml::events::BytesStart<'_>,
) -> Result<(), LibvirtXmlError> {
    let attr = |key: &str| -> Option<String> {
        e.try_get_attribute(key).ok().flatten().and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
    };
    let name: String = {
        let local = e.local_name();
        let n: &str = local.as_ref();
        n.to_owned()
    };
    if stack.is_empty() {
        if *root_seen {
            return Err(LibvirtXmlError("more than one root element".into()));
        }
        *root_seen = true;
        match name.as_str() {
            "domstatus" => out.pid = attr("pid").and_then(|p| p.parse().ok()),
            "domain" => {}
            other => return Err(LibvirtXmlError(format!("root element <{other}>"))),
        }
    }
    if stack.len() >= MAX_DEPTH {
        return Err(LibvirtXmlError(format!(
            "elements nested deeper than {MAX_DEPTH} levels"
        )));
    }
    stack.push(Open {
        kind: attr("type"),
        name,
    });
    if in_domain(stack).map(names).as_deref() == Some(&["metadata", "instance", "owner", "project"])
    {
        out.nova_project_uuid = attr("uuid");
    }
    if in_domain(stack).is_some_and(is_function_address) {
        if let Some(bdf) = address_bdf(attr) {
            out.hostdevs.push(bdf);
        }
    }
    Ok(())
}

/// The open elements below the domain (`<domain>`, or `<domstatus><domain>`), if inside it.
fn in_domain(stack: &[Open]) -> Option<&[Open]> {
    match stack {
        [d, rest @ ..] if d.name == "domain" => Some(rest),
        [s, d, rest @ ..] if s.name == "domstatus" && d.name == "domain" => Some(rest),
        _ => None,
    }
}

fn names(path: &[Open]) -> Vec<&str> {
    path.iter().map(|o| o.name.as_str()).collect()
}

/// `devices/hostdev[type=pci]/source/address`, `devices/interface[type=hostdev]/source/address`,
/// or the VF a `<forward mode='hostdev'>` pool chose:
/// `devices/interface/actual[type=hostdev]/source/address`.
fn is_function_address(path: &[Open]) -> bool {
    let is = |o: &Open, name: &str, kind: Option<&str>| {
        o.name == name && kind.is_none_or(|k| o.kind.as_deref() == Some(k))
    };
    match path {
        [d, dev, s, a] => {
            is(d, "devices", None)
                && (is(dev, "hostdev", Some("pci")) || is(dev, "interface", Some("hostdev")))
                && is(s, "source", None)
                && is(a, "address", None)
        }
        [d, i, act, s, a] => {
            is(d, "devices", None)
                && is(i, "interface", None)
                && is(act, "actual", Some("hostdev"))
                && is(s, "source", None)
                && is(a, "address", None)
        }
        _ => false,
    }
}

/// `<address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>`.
fn address_bdf(attr: impl Fn(&str) -> Option<String>) -> Option<Bdf> {
    let num = |k: &str| -> Option<u32> {
        let v = attr(k)?;
        let v = v.strip_prefix("0x").unwrap_or(&v).to_owned();
        u32::from_str_radix(&v, 16).ok()
    };
    Bdf::new(
        u16::try_from(num("domain").unwrap_or(0)).ok()?,
        u8::try_from(num("bus")?).ok()?,
        u8::try_from(num("slot")?).ok()?,
        u8::try_from(num("function")?).ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hostdevs_interfaces_and_pool_choices() {
        let xml = r#"<domstatus state='running' pid='4242'>
  <domain type='kvm' id='3'>
    <name>web-7</name>
    <uuid>5b2c6f1e-0d1a-4b8e-9d1e-2b7f3c1d9a01</uuid>
    <devices>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <driver name='vfio'/>
        <source><address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/></source>
      </hostdev>
      <interface type='hostdev' managed='yes'>
        <source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x2'/></source>
        <mac address='52:54:00:6d:90:02'/>
      </interface>
      <interface type='network'>
        <actual type='hostdev'><source><address type='pci' domain='0x0001' bus='0x86' slot='0x01' function='0x3'/></source></actual>
      </interface>
      <interface type='bridge'><source bridge='br0'/></interface>
    </devices>
  </domain>
</domstatus>"#;
        let d = parse_domain_xml(xml).unwrap();
        assert_eq!(d.name.as_deref(), Some("web-7"));
        assert_eq!(d.pid, Some(4242));
        let h: Vec<String> = d.hostdevs.iter().map(ToString::to_string).collect();
        assert_eq!(h, ["0000:3b:02.1", "0000:3b:02.2", "0001:86:01.3"]);
    }

    /// OpenStack Nova writes its instance's name and project into the domain's metadata.
    #[test]
    fn reads_novas_metadata_when_present() {
        let xml = r#"<domain type='kvm'><name>instance-0000002a</name>
          <uuid>6f2e1c3a-0000-4000-8000-00000000002a</uuid>
          <metadata>
            <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
              <nova:package version="27.1.0"/>
              <nova:name>web-shop &amp; cart</nova:name>
              <nova:owner>
                <nova:user uuid="u-1">alice</nova:user>
                <nova:project uuid="p-42">retail</nova:project>
              </nova:owner>
            </nova:instance>
          </metadata></domain>"#;
        let d = parse_domain_xml(xml).unwrap();
        assert_eq!(d.name.as_deref(), Some("instance-0000002a"));
        assert_eq!(d.nova_name.as_deref(), Some("web-shop & cart"));
        assert_eq!(d.nova_project.as_deref(), Some("retail"));
        assert_eq!(d.nova_project_uuid.as_deref(), Some("p-42"));
        // Without it: nothing invented.
        let d = parse_domain_xml("<domain><name>x</name></domain>").unwrap();
        assert_eq!((d.nova_name, d.nova_project), (None, None));
    }

    #[test]
    fn rejects_what_is_not_a_domain() {
        assert!(parse_domain_xml("<network/>").is_err());
        assert!(parse_domain_xml("not xml").is_err());
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn a_name_with_entities_is_read_whole() {
        let xml = "<domain><name>web &amp; db &lt;7&gt; &#x41;</name><uuid>u</uuid></domain>";
        let d = parse_domain_xml(xml).unwrap();
        assert_eq!(d.name.as_deref(), Some("web & db <7> A"));
        assert_eq!(d.uuid.as_deref(), Some("u"));
    }

    /// Issue 13: a status XML nested 4000 levels deep aborted the agent thread (stack
    /// overflow) at every start.
    #[test]
    fn deeply_nested_xml_is_refused_with_a_reason_not_a_crash() {
        let depth = 4000;
        let xml = format!(
            "<domstatus pid='1'><domain><name>x</name>{}{}</domain></domstatus>",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        );
        // A small stack, like the agent's threads: the parse must not recurse per level.
        let r = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse_domain_xml(&xml).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .unwrap();
        assert!(r.is_err(), "{r:?}");
    }
}
