//! libvirt's live domain XML (`/run/libvirt/qemu/<name>.xml`): the domain's name, UUID, QEMU
//! pid, and every PCI function it holds (`<hostdev>`, `<interface type='hostdev'>`, and the VF a
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
}

/// Why an XML file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not libvirt domain XML: {0}")]
pub struct LibvirtXmlError(String);

/// Parses a domain or domstatus document.
pub fn parse_domain_xml(text: &str) -> Result<LiveDomain, LibvirtXmlError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| LibvirtXmlError(e.to_string()))?;
    let root = doc.root_element();
    let (domain, pid) = match root.tag_name().name() {
        "domstatus" => (
            root.children()
                .find(|n| n.has_tag_name("domain"))
                .ok_or_else(|| LibvirtXmlError("<domstatus> without <domain>".into()))?,
            root.attribute("pid").and_then(|p| p.parse().ok()),
        ),
        "domain" => (root, None),
        other => return Err(LibvirtXmlError(format!("root element <{other}>"))),
    };
    let text_of = |tag: &str| {
        domain
            .children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
    };
    let mut out = LiveDomain {
        name: text_of("name"),
        uuid: text_of("uuid"),
        pid,
        hostdevs: Vec::new(),
    };
    let devices = domain.children().find(|n| n.has_tag_name("devices"));
    for dev in devices.into_iter().flat_map(|d| d.children()) {
        let pci = match (dev.tag_name().name(), dev.attribute("type")) {
            ("hostdev", Some("pci")) => Some(dev),
            ("interface", Some("hostdev")) => Some(dev),
            ("interface", _) => dev
                .children()
                .find(|n| n.has_tag_name("actual") && n.attribute("type") == Some("hostdev")),
            _ => None,
        };
        let Some(node) = pci else { continue };
        let addr = node
            .children()
            .find(|n| n.has_tag_name("source"))
            .and_then(|s| s.children().find(|n| n.has_tag_name("address")));
        if let Some(bdf) = addr.and_then(address_bdf) {
            out.hostdevs.push(bdf);
        }
    }
    Ok(out)
}

/// `<address domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/>`.
fn address_bdf(a: roxmltree::Node<'_, '_>) -> Option<Bdf> {
    let num = |k: &str| -> Option<u32> {
        let v = a.attribute(k)?;
        let v = v.strip_prefix("0x").unwrap_or(v);
        u32::from_str_radix(v, 16).ok()
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

    #[test]
    fn rejects_what_is_not_a_domain() {
        assert!(parse_domain_xml("<network/>").is_err());
        assert!(parse_domain_xml("not xml").is_err());
    }
}
