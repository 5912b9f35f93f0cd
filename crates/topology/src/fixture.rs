//! Builds host trees that reproduce the real layout, with real symlinks: sysfs (`virtfnN`,
//! `physfn`, `driver`, `iommu_group`, `net/`), `/proc/<pid>` (fd links to `/dev/vfio/N`,
//! `cmdline`, `cgroup`, `ns/net`), libvirt live XML and network namespaces. Tests use it for
//! fixtures; the simulator materialises its host with it, so `--root DIR` reads both the way it
//! reads `/`.
//!
//! # Conventions where a tree cannot hold the real thing
//! - A process's namespace view is its own root: `/proc/<pid>/root/sys/class/net/<if>/device`.
//! - A named namespace `/run/netns/<name>` (an nsfs bind mount on a real host) keeps its sysfs
//!   view beside it in `/run/netns/<name>.sys/class/net/<if>/device`.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use vfguard_model::Bdf;

/// The host namespace inode written to `/proc/1/ns/net`.
pub const HOST_NETNS_INODE: u64 = 4_026_531_993;

/// A PCI function to create.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Address.
    pub bdf: Bdf,
    /// `vendor`, e.g. `0x8086`.
    pub vendor: String,
    /// `device`, e.g. `0x1572`.
    pub device: String,
    /// `class`, e.g. `0x020000`.
    pub class: String,
    /// Driver to bind, if any.
    pub driver: Option<String>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// The IOMMU unit translating its DMA (`dmar1`): an `iommu` link to its class device.
    pub iommu_unit: Option<String>,
    /// Netdevs (created in the host namespace).
    pub netdevs: Vec<String>,
    /// `sriov_totalvfs` (an SR-IOV PF) when set.
    pub totalvfs: Option<u32>,
    /// Write AER counter files.
    pub aer: bool,
}

impl FunctionSpec {
    /// An Intel Ethernet function with no driver.
    pub fn new(bdf: Bdf) -> FunctionSpec {
        FunctionSpec {
            bdf,
            vendor: "0x8086".into(),
            device: "0x1572".into(),
            class: "0x020000".into(),
            driver: None,
            iommu_group: None,
            iommu_unit: None,
            netdevs: Vec::new(),
            totalvfs: None,
            aer: true,
        }
    }
}

/// A QEMU process to create.
#[derive(Debug, Clone, Default)]
pub struct QemuSpec {
    /// pid.
    pub pid: u32,
    /// `-name guest=...`.
    pub name: String,
    /// `-uuid`.
    pub uuid: Option<String>,
    /// Functions on its command line.
    pub hostdevs: Vec<Bdf>,
    /// Write `-device` in libvirt's JSON form instead of key=value.
    pub json: bool,
    /// `/dev/vfio/<group>` files it holds open.
    pub vfio_groups: Vec<u32>,
}

/// A libvirt domain's live XML to create.
#[derive(Debug, Clone, Default)]
pub struct DomainSpec {
    /// `<name>`.
    pub name: String,
    /// `<uuid>`.
    pub uuid: String,
    /// `<domstatus pid=...>`.
    pub pid: u32,
    /// `<hostdev type='pci'>` sources.
    pub hostdevs: Vec<Bdf>,
    /// `<interface type='hostdev'>` sources.
    pub interfaces: Vec<Bdf>,
    /// OpenStack Nova's `<metadata><nova:instance>`: the instance's name and its project
    /// (name, uuid), when the domain is a Nova instance.
    pub nova: Option<NovaSpec>,
}

/// What Nova writes into a domain's metadata.
#[derive(Debug, Clone, Default)]
pub struct NovaSpec {
    /// `<nova:name>`.
    pub name: String,
    /// `<nova:project>`.
    pub project: String,
    /// Its `uuid` attribute.
    pub project_uuid: String,
}

/// A Kubernetes container's OCI bundle as its CRI runtime keeps it (see [`crate::cri`]): its
/// `config.json` with the pod's annotations and its network namespace, and its pid file.
#[derive(Debug, Clone)]
pub struct CriBundleSpec {
    /// The runtime whose layout and annotation keys to write.
    pub runtime: crate::cri::CriRuntime,
    /// Container ID (the bundle directory).
    pub id: String,
    /// The pod sandbox (`pause`) rather than a container in it.
    pub sandbox: bool,
    /// The sandbox's container ID.
    pub sandbox_id: String,
    /// The pod's Kubernetes namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID.
    pub pod_uid: String,
    /// The container's name (ignored for the sandbox).
    pub container: String,
    /// `linux.namespaces[type=network].path`, when set.
    pub netns_path: Option<String>,
    /// The init pid written to the pid file, when set.
    pub pid: Option<u32>,
}

/// XML text: `&`, `<`, `>`, `"` and `'` escaped.
fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A host tree under a directory.
#[derive(Debug, Clone)]
pub struct HostFixture {
    root: PathBuf,
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text)
}

fn link(target: &str, at: &Path) -> io::Result<()> {
    if let Some(parent) = at.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::symlink_metadata(at) {
        Ok(_) => fs::remove_file(at)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(target, at)
}

impl HostFixture {
    /// Creates the skeleton of a host under `root`.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<HostFixture> {
        let f = HostFixture { root: root.into() };
        for d in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/kernel/iommu_groups",
            "sys/class/net",
            "run/libvirt/qemu",
            "run/netns",
            "dev/vfio",
        ] {
            fs::create_dir_all(f.root.join(d))?;
        }
        f.add_process(1, "systemd", &["/sbin/init"])?;
        Ok(f)
    }

    /// The tree's root (pass it as `--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a host path lives in the tree.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    fn dev_dir(&self, bdf: Bdf) -> PathBuf {
        self.path(&format!("/sys/devices/pci{:04x}:00/{bdf}", bdf.segment()))
    }

    /// Creates a PCI function.
    pub fn add_function(&self, spec: &FunctionSpec) -> io::Result<()> {
        let bdf = spec.bdf;
        let dir = self.dev_dir(bdf);
        fs::create_dir_all(&dir)?;
        link(
            &format!("../../../devices/pci{:04x}:00/{bdf}", bdf.segment()),
            &self.path(&format!("/sys/bus/pci/devices/{bdf}")),
        )?;
        write(&dir.join("vendor"), &format!("{}\n", spec.vendor))?;
        write(&dir.join("device"), &format!("{}\n", spec.device))?;
        write(&dir.join("class"), &format!("{}\n", spec.class))?;
        write(&dir.join("numa_node"), "0\n")?;
        write(&dir.join("reset_method"), "flr\n")?;
        if let Some(t) = spec.totalvfs {
            write(&dir.join("sriov_totalvfs"), &format!("{t}\n"))?;
            write(&dir.join("sriov_numvfs"), "0\n")?;
        }
        if spec.aer {
            for (file, total) in [
                ("aer_dev_correctable", "TOTAL_ERR_COR"),
                ("aer_dev_nonfatal", "TOTAL_ERR_NONFATAL"),
                ("aer_dev_fatal", "TOTAL_ERR_FATAL"),
            ] {
                write(&dir.join(file), &format!("{total} 0\n"))?;
            }
        }
        if let Some(g) = spec.iommu_group {
            self.set_iommu_group(bdf, g)?;
        }
        if let Some(unit) = &spec.iommu_unit {
            // As the kernel links it: /sys/devices/pciSSSS:00/<bdf>/iommu ->
            // ../../virtual/iommu/<unit> (drivers/iommu/iommu-sysfs.c iommu_device_link()).
            fs::create_dir_all(self.path(&format!("/sys/devices/virtual/iommu/{unit}")))?;
            link(&format!("../../virtual/iommu/{unit}"), &dir.join("iommu"))?;
        }
        self.bind(bdf, spec.driver.as_deref())?;
        for nd in &spec.netdevs {
            self.add_netdev(bdf, nd)?;
        }
        Ok(())
    }

    fn set_iommu_group(&self, bdf: Bdf, g: u32) -> io::Result<()> {
        link(
            &format!("../../../kernel/iommu_groups/{g}"),
            &self.dev_dir(bdf).join("iommu_group"),
        )?;
        link(
            &format!("../../../../devices/pci{:04x}:00/{bdf}", bdf.segment()),
            &self.path(&format!("/sys/kernel/iommu_groups/{g}/devices/{bdf}")),
        )
    }

    /// Binds a driver (or unbinds, with `None`).
    pub fn bind(&self, bdf: Bdf, driver: Option<&str>) -> io::Result<()> {
        let at = self.dev_dir(bdf).join("driver");
        match driver {
            Some(d) => {
                fs::create_dir_all(self.path(&format!("/sys/bus/pci/drivers/{d}")))?;
                link(&format!("../../../bus/pci/drivers/{d}"), &at)
            }
            None => match fs::remove_file(&at) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// Creates a netdev of a function in the host namespace.
    pub fn add_netdev(&self, bdf: Bdf, ifname: &str) -> io::Result<()> {
        let dir = self.dev_dir(bdf).join("net").join(ifname);
        write(&dir.join("ifindex"), "1\n")?;
        link(
            &format!(
                "../../devices/pci{:04x}:00/{bdf}/net/{ifname}",
                bdf.segment()
            ),
            &self.path(&format!("/sys/class/net/{ifname}")),
        )
    }

    /// Removes a netdev from the host namespace (moved away or gone).
    pub fn remove_netdev(&self, bdf: Bdf, ifname: &str) -> io::Result<()> {
        let _ = fs::remove_file(self.path(&format!("/sys/class/net/{ifname}")));
        match fs::remove_dir_all(self.dev_dir(bdf).join("net").join(ifname)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates `n` VFs under an SR-IOV PF with `virtfnN`/`physfn` links, replacing any previous
    /// ones (as writing 0 then `n` to `sriov_numvfs` does). `vf_bdf(i)` gives each address and
    /// `spec(i, bdf)` each function's details.
    pub fn set_vfs(
        &self,
        pf: Bdf,
        n: u16,
        vf_bdf: impl Fn(u16) -> Bdf,
        spec: impl Fn(u16, Bdf) -> FunctionSpec,
    ) -> io::Result<Vec<Bdf>> {
        let pf_dir = self.dev_dir(pf);
        for name in fs::read_dir(&pf_dir)?.filter_map(|e| e.ok()) {
            let fname = name.file_name().to_string_lossy().into_owned();
            if fname.starts_with("virtfn") {
                if let Ok(t) = fs::read_link(name.path()) {
                    if let Some(old) = t
                        .file_name()
                        .and_then(|b| b.to_str())
                        .and_then(|b| b.parse::<Bdf>().ok())
                    {
                        self.remove_function(old)?;
                    }
                }
                fs::remove_file(name.path())?;
            }
        }
        let mut out = Vec::new();
        for i in 0..n {
            let bdf = vf_bdf(i);
            let mut s = spec(i, bdf);
            s.bdf = bdf;
            s.totalvfs = None;
            s.aer = false;
            self.add_function(&s)?;
            link(&format!("../{bdf}"), &pf_dir.join(format!("virtfn{i}")))?;
            link(&format!("../{pf}"), &self.dev_dir(bdf).join("physfn"))?;
            out.push(bdf);
        }
        write(&pf_dir.join("sriov_numvfs"), &format!("{n}\n"))?;
        Ok(out)
    }

    /// Removes a function (a VF going away).
    pub fn remove_function(&self, bdf: Bdf) -> io::Result<()> {
        let dir = self.dev_dir(bdf);
        if let Ok(entries) = fs::read_dir(dir.join("net")) {
            for e in entries.filter_map(|e| e.ok()) {
                let _ = fs::remove_file(self.path(&format!(
                    "/sys/class/net/{}",
                    e.file_name().to_string_lossy()
                )));
            }
        }
        if let Ok(g) = fs::read_link(dir.join("iommu_group")) {
            if let Some(g) = g.file_name().and_then(|g| g.to_str()) {
                let _ = fs::remove_file(
                    self.path(&format!("/sys/kernel/iommu_groups/{g}/devices/{bdf}")),
                );
            }
        }
        let _ = fs::remove_file(self.path(&format!("/sys/bus/pci/devices/{bdf}")));
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates a process with a command line (a NUL-separated `cmdline`), host namespace.
    pub fn add_process(&self, pid: u32, comm: &str, argv: &[&str]) -> io::Result<()> {
        let base = self.path(&format!("/proc/{pid}"));
        fs::create_dir_all(base.join("fd"))?;
        write(&base.join("comm"), &format!("{comm}\n"))?;
        let mut cmd = argv.join("\0");
        cmd.push('\0');
        write(&base.join("cmdline"), &cmd)?;
        write(&base.join("cgroup"), "0::/system.slice\n")?;
        link(&format!("net:[{HOST_NETNS_INODE}]"), &base.join("ns/net"))?;
        for (fd, target) in ["/dev/null", "/dev/null", "/dev/null"].iter().enumerate() {
            link(target, &base.join("fd").join(fd.to_string()))?;
        }
        Ok(())
    }

    /// Removes a process (it exited).
    pub fn remove_process(&self, pid: u32) -> io::Result<()> {
        match fs::remove_dir_all(self.path(&format!("/proc/{pid}"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates a QEMU process holding its vfio groups open.
    pub fn add_qemu(&self, q: &QemuSpec) -> io::Result<()> {
        let mut argv: Vec<String> = vec![
            "/usr/bin/qemu-system-x86_64".into(),
            "-name".into(),
            format!("guest={},debug-threads=on", q.name),
        ];
        if let Some(u) = &q.uuid {
            argv.extend(["-uuid".into(), u.clone()]);
        }
        for (i, h) in q.hostdevs.iter().enumerate() {
            argv.push("-device".into());
            argv.push(if q.json {
                format!(r#"{{"driver":"vfio-pci","host":"{h}","id":"hostdev{i}","bus":"pci.{}","addr":"0x0"}}"#, i + 4)
            } else {
                format!("vfio-pci,host={h},id=hostdev{i},bus=pci.{},addr=0x0", i + 4)
            });
        }
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.add_process(q.pid, "qemu-system-x86", &refs)?;
        let fd_dir = self.path(&format!("/proc/{}/fd", q.pid));
        link("/dev/vfio/vfio", &fd_dir.join("20"))?;
        for (i, g) in q.vfio_groups.iter().enumerate() {
            write(&self.path(&format!("/dev/vfio/{g}")), "")?;
            link(
                &format!("/dev/vfio/{g}"),
                &fd_dir.join((21 + i).to_string()),
            )?;
        }
        Ok(())
    }

    /// Writes a libvirt domain's live XML (`/run/libvirt/qemu/<name>.xml`).
    pub fn add_domain(&self, d: &DomainSpec) -> io::Result<()> {
        let addr = |b: &Bdf| {
            format!(
                "<address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>",
                b.segment(),
                b.bus(),
                b.device(),
                b.function()
            )
        };
        let mut devices = String::new();
        for h in &d.hostdevs {
            devices.push_str(&format!(
                "      <hostdev mode='subsystem' type='pci' managed='yes'>\n        <driver name='vfio'/>\n        <source>{}</source>\n      </hostdev>\n",
                addr(h)
            ));
        }
        for h in &d.interfaces {
            devices.push_str(&format!(
                "      <interface type='hostdev' managed='yes'>\n        <source>{}</source>\n      </interface>\n",
                addr(h).replace("<address ", "<address type='pci' ")
            ));
        }
        let metadata = d.nova.as_ref().map_or_else(String::new, |n| {
            format!(
                "    <metadata>\n      <nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\">\n        <nova:name>{}</nova:name>\n        <nova:owner>\n          <nova:project uuid=\"{}\">{}</nova:project>\n        </nova:owner>\n      </nova:instance>\n    </metadata>\n",
                xml_text(&n.name),
                xml_text(&n.project_uuid),
                xml_text(&n.project)
            )
        });
        let xml = format!(
            "<domstatus state='running' reason='booted' pid='{}'>\n  <domain type='kvm' id='1'>\n    <name>{}</name>\n    <uuid>{}</uuid>\n{metadata}    <devices>\n{devices}    </devices>\n  </domain>\n</domstatus>\n",
            d.pid, d.name, d.uuid
        );
        write(
            &self.path(&format!("/run/libvirt/qemu/{}.xml", d.name)),
            &xml,
        )?;
        write(
            &self.path(&format!("/run/libvirt/qemu/{}.pid", d.name)),
            &d.pid.to_string(),
        )
    }

    /// Removes a domain's live XML (it stopped).
    pub fn remove_domain(&self, name: &str) -> io::Result<()> {
        let _ = fs::remove_file(self.path(&format!("/run/libvirt/qemu/{name}.pid")));
        match fs::remove_file(self.path(&format!("/run/libvirt/qemu/{name}.xml"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates a container: a process named `comm` in its own namespace, with a cgroup naming
    /// its ID and the listed VF netdevs in its namespace (they leave the host namespace).
    pub fn add_container(
        &self,
        pid: u32,
        comm: &str,
        id: &str,
        netns_inode: u64,
        links: &[(&str, Bdf)],
    ) -> io::Result<()> {
        self.add_process(pid, comm, &["/pause"])?;
        let base = self.path(&format!("/proc/{pid}"));
        write(
            &base.join("cgroup"),
            &format!("0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{id}.scope\n"),
        )?;
        link(&format!("net:[{netns_inode}]"), &base.join("ns/net"))?;
        for (ifname, bdf) in links {
            link(
                &format!("../../../devices/pci{:04x}:00/{bdf}", bdf.segment()),
                &base.join(format!("root/sys/class/net/{ifname}/device")),
            )?;
        }
        Ok(())
    }

    /// Creates a named namespace (`ip netns add NAME`) holding the listed netdevs.
    pub fn add_named_netns(&self, name: &str, links: &[(&str, Bdf)]) -> io::Result<()> {
        write(&self.path(&format!("/run/netns/{name}")), "")?;
        fs::create_dir_all(self.path(&format!("/run/netns/{name}.sys/class/net")))?;
        for (ifname, bdf) in links {
            link(
                &format!("../../../devices/pci{:04x}:00/{bdf}", bdf.segment()),
                &self.path(&format!("/run/netns/{name}.sys/class/net/{ifname}/device")),
            )?;
        }
        Ok(())
    }

    /// Writes a Kubernetes container's CRI bundle (`config.json` and pid file).
    pub fn add_cri_bundle(&self, b: &CriBundleSpec) -> io::Result<()> {
        use crate::cri::CriRuntime;
        let (config, pidfile) = b.runtime.bundle_files(&b.id);
        let kind = if b.sandbox { "sandbox" } else { "container" };
        let mut annotations = serde_json::Map::new();
        let mut put = |k: &str, v: &str| {
            annotations.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
        };
        match b.runtime {
            CriRuntime::Containerd => {
                put("io.kubernetes.cri.container-type", kind);
                put("io.kubernetes.cri.sandbox-id", &b.sandbox_id);
                put("io.kubernetes.cri.sandbox-name", &b.pod);
                put("io.kubernetes.cri.sandbox-namespace", &b.namespace);
                put("io.kubernetes.cri.sandbox-uid", &b.pod_uid);
                if !b.sandbox {
                    put("io.kubernetes.cri.container-name", &b.container);
                }
            }
            CriRuntime::Crio => {
                put("io.container.manager", "cri-o");
                put("io.kubernetes.cri-o.ContainerType", kind);
                put("io.kubernetes.cri-o.SandboxID", &b.sandbox_id);
                put("io.kubernetes.pod.name", &b.pod);
                put("io.kubernetes.pod.namespace", &b.namespace);
                put("io.kubernetes.pod.uid", &b.pod_uid);
                // CRI-O names its infra container `POD`.
                put(
                    "io.kubernetes.container.name",
                    if b.sandbox { "POD" } else { &b.container },
                );
            }
        }
        let mut namespaces = vec![serde_json::json!({"type": "pid"})];
        namespaces.push(match &b.netns_path {
            Some(p) => serde_json::json!({"type": "network", "path": p}),
            None => serde_json::json!({"type": "network"}),
        });
        let spec = serde_json::json!({
            "ociVersion": "1.1.0",
            "annotations": annotations,
            "linux": {"namespaces": namespaces},
        });
        write(
            &self.path(&config.to_string_lossy()),
            &format!("{spec:#}\n"),
        )?;
        if let Some(pid) = b.pid {
            write(&self.path(&pidfile.to_string_lossy()), &pid.to_string())?;
        }
        Ok(())
    }

    /// Writes an AER counter file (`aer_dev_correctable`...) of a function.
    pub fn write_aer(&self, bdf: Bdf, file: &str, text: &str) -> io::Result<()> {
        write(&self.dev_dir(bdf).join(file), text)
    }
}

fn bdf(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf::new(0, bus, dev, func).unwrap_or_else(|| unreachable!("constant addresses are valid"))
}

fn vf_bdf(i: u16) -> Bdf {
    bdf(0x3b, 2, u8::try_from(i).unwrap_or(0))
}

/// The sample host of the tests and of `testdata/sysfs/sample-host`: an i40e PF 0000:3b:00.0
/// with 8 VFs owned every way there is (VF0 a QEMU by fd and key=value command line, VF1 a
/// libvirt domain with a JSON command line, VF2 a pod's namespace, VF3 the named namespace
/// `tenant-a`, VF4 the host, VF5 unbound, VF6 vfio-bound and unheld, VF7 libvirt and QEMU
/// disagreeing), a two-port igb NIC with port 1 passed whole to the VM `fw-1`, an NVMe drive and
/// some noise processes.
pub fn sample_host(root: &Path) -> io::Result<HostFixture> {
    let f = HostFixture::new(root)?;
    let pf = bdf(0x3b, 0, 0);
    f.add_function(&FunctionSpec {
        driver: Some("i40e".into()),
        netdevs: vec!["enp59s0f0".into()],
        totalvfs: Some(64),
        iommu_group: Some(30),
        ..FunctionSpec::new(pf)
    })?;
    let drivers = [
        "vfio-pci", "vfio-pci", "iavf", "iavf", "iavf", "", "vfio-pci", "vfio-pci",
    ];
    f.set_vfs(pf, 8, vf_bdf, |i, bdf| FunctionSpec {
        device: "0x154c".into(),
        driver: Some(drivers[usize::from(i)])
            .filter(|d| !d.is_empty())
            .map(Into::into),
        iommu_group: Some(100 + u32::from(i)),
        netdevs: if i == 4 {
            vec!["enp59s0f0v4".into()]
        } else {
            vec![]
        },
        ..FunctionSpec::new(bdf)
    })?;
    // VF0: plain QEMU, key=value command line, holds group 100.
    f.add_qemu(&QemuSpec {
        pid: 4100,
        name: "web-7".into(),
        uuid: Some("5b2c6f1e-0d1a-4b8e-9d1e-2b7f3c1d9a01".into()),
        hostdevs: vec![vf_bdf(0)],
        json: false,
        vfio_groups: vec![100],
    })?;
    // VF1: libvirt domain, JSON command line, holds group 101.
    f.add_qemu(&QemuSpec {
        pid: 4200,
        name: "db-2".into(),
        uuid: Some("11111111-2222-3333-4444-555555555555".into()),
        hostdevs: vec![vf_bdf(1)],
        json: true,
        vfio_groups: vec![101],
    })?;
    f.add_domain(&DomainSpec {
        name: "db-2".into(),
        uuid: "11111111-2222-3333-4444-555555555555".into(),
        pid: 4200,
        hostdevs: vec![],
        interfaces: vec![vf_bdf(1)],
        nova: None,
    })?;
    // VF2: its netdev in a pod's namespace; VF3: in a named namespace.
    let cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    f.add_container(5000, "pause", cid, 4_026_532_100, &[("net1", vf_bdf(2))])?;
    f.add_named_netns("tenant-a", &[("eth0", vf_bdf(3))])?;
    // VF7: libvirt says one domain, the holder calls itself another.
    f.add_qemu(&QemuSpec {
        pid: 4700,
        name: "imposter".into(),
        uuid: None,
        hostdevs: vec![vf_bdf(7)],
        json: false,
        vfio_groups: vec![107],
    })?;
    f.add_domain(&DomainSpec {
        name: "batch-9".into(),
        uuid: "99999999-0000-0000-0000-000000000009".into(),
        pid: 4700,
        hostdevs: vec![vf_bdf(7)],
        interfaces: vec![],
        nova: None,
    })?;
    // A two-port igb NIC: port 0 on the host, port 1 passed through whole to a VM.
    f.add_function(&FunctionSpec {
        device: "0x1521".into(),
        driver: Some("igb".into()),
        netdevs: vec!["eno1".into()],
        iommu_group: Some(40),
        ..FunctionSpec::new(bdf(0x5e, 0, 0))
    })?;
    f.add_function(&FunctionSpec {
        device: "0x1521".into(),
        driver: Some("vfio-pci".into()),
        iommu_group: Some(41),
        ..FunctionSpec::new(bdf(0x5e, 0, 1))
    })?;
    f.add_qemu(&QemuSpec {
        pid: 4300,
        name: "fw-1".into(),
        uuid: None,
        hostdevs: vec![bdf(0x5e, 0, 1)],
        json: false,
        vfio_groups: vec![41],
    })?;
    // Some noise processes and a non-network function.
    for pid in 10..40 {
        f.add_process(pid, "kworker", &["[kworker]"])?;
    }
    f.add_function(&FunctionSpec {
        class: "0x010802".into(),
        driver: Some("nvme".into()),
        ..FunctionSpec::new(bdf(0x01, 0, 0))
    })?;
    Ok(f)
}
