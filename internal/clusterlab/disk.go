package clusterlab

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// layers writes the lab's /usr layers: systemctl and fence_lab, and what
// hides the other kind of node's programs (overlayfs whiteouts: character
// devices 0:0); for 3.0.2, links from /usr/sbin to the build.
func (c *Cluster) layers() error {
	agent := filepath.Join(c.Dir, "fence_lab")
	var peerProgs []string
	if c.peer != "" {
		ents, err := os.ReadDir(filepath.Join(c.peer, "sbin"))
		if err != nil {
			return err
		}
		for _, e := range ents {
			peerProgs = append(peerProgs, e.Name())
		}
	}
	corosyncs, _ := filepath.Glob("/usr/sbin/corosync*")
	for _, kind := range []string{"full", "remote"} {
		usr := filepath.Join(c.Dir, "layers", kind, "usr")
		hide := []string{"sbin/pacemaker-remoted", "sbin/pacemaker_remoted"}
		if kind == "remote" {
			hide = []string{"sbin/pacemakerd", "lib/pacemaker"}
			for _, p := range corosyncs {
				hide = append(hide, "sbin/"+filepath.Base(p))
			}
		}
		for _, d := range []string{"bin", "sbin", "lib"} {
			if err := os.MkdirAll(filepath.Join(usr, d), 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(usr, "bin", "systemctl"), []byte(systemctlShim), 0o755); err != nil {
			return err
		}
		if kind == "full" {
			if err := copyFile(agent, filepath.Join(usr, "sbin", "fence_lab")); err != nil {
				return err
			}
		}
		hidden := map[string]bool{}
		for _, h := range hide {
			hidden[h] = true
			if err := syscall.Mknod(filepath.Join(usr, h), syscall.S_IFCHR|0o600, 0); err != nil {
				return fmt.Errorf("whiteout %s: %w", h, err)
			}
		}
		for _, p := range peerProgs {
			if !hidden["sbin/"+p] {
				if err := os.Symlink(filepath.Join(c.peer, "sbin", p), filepath.Join(usr, "sbin", p)); err != nil {
					return err
				}
			}
		}
	}
	if c.peer != "" {
		sbin := filepath.Join(c.Dir, "layers", "peer-sbin")
		if err := os.MkdirAll(sbin, 0o755); err != nil {
			return err
		}
		return copyFile(agent, filepath.Join(sbin, "fence_lab"))
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// usrLayers is the overlay lowerdir (without /usr itself) for n's /usr.
func (c *Cluster) usrLayers(n *Node) string {
	kind := "full"
	if n.Remote {
		kind = "remote"
	}
	return filepath.Join(c.Dir, "layers", kind, "usr") + ":" + filepath.Join(c.deb, "usr")
}

// disk makes a node's disk: the directories bind-mounted at boot, owned as
// Debian's packages own them, with corosync's config and key, the shared
// Pacemaker authkey, /etc/default/pacemaker and (full nodes) the CIB.
func (c *Cluster) disk(n *Node) error {
	hu, err := user.Lookup("hacluster")
	if err != nil {
		return err
	}
	hg, err := user.LookupGroup("haclient")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(hu.Uid)
	gid, _ := strconv.Atoi(hg.Gid)
	disk := filepath.Join(n.dir, "disk")
	type entry struct {
		path     string
		mode     os.FileMode
		uid, gid int
		content  []byte // nil for a directory
	}
	entries := []entry{
		{"", 0o755, 0, 0, nil}, {"etc", 0o755, 0, 0, nil}, {"etc/upper", 0o755, 0, 0, nil}, {"etc/work", 0o755, 0, 0, nil},
		{"etc/upper/default", 0o755, 0, 0, nil}, {"etc/upper/default/pacemaker", 0o644, 0, 0, []byte(defaultPacemaker)},
		{"etc-corosync", 0o755, 0, 0, nil}, {"etc-pacemaker", 0o750, 0, gid, nil},
		{"var-lib-pacemaker", 0o750, uid, gid, nil}, {"var-lib-corosync", 0o755, 0, 0, nil},
		{"var-log-pacemaker", 0o770, uid, gid, nil}, {"var-log-corosync", 0o755, 0, 0, nil},
		{"root", 0o700, 0, 0, nil}, {"home", 0o755, 0, 0, nil},
	}
	for i := range entries {
		if entries[i].path == "root" && c.peer != "" {
			// The 3.0.2 build lives under /root/.cache: hacluster's daemons
			// must pass through the node's /root to run it.
			entries[i].mode = 0o701
		}
	}
	for _, d := range []string{"cib", "pengine", "blackbox", "cores"} {
		entries = append(entries, entry{"var-lib-pacemaker/" + d, 0o750, uid, gid, nil})
	}
	hosts, _ := os.ReadFile("/etc/hosts")
	hosts = append(hosts, "\n# the pcmkeys cluster lab\n"...)
	for _, o := range c.All() {
		hosts = append(hosts, fmt.Sprintf("%s %s\n", o.Addr, o.Name)...)
	}
	entries = append(entries, entry{"etc/upper/hosts", 0o644, 0, 0, hosts})
	if c.authkeys == nil {
		c.authkeys = map[string][]byte{"corosync": random(256), "pacemaker": random(4096)}
	}
	entries = append(entries, entry{"etc-pacemaker/authkey", 0o400, uid, gid, c.authkeys["pacemaker"]})
	if !n.Remote {
		entries = append(entries,
			entry{"etc-corosync/corosync.conf", 0o644, 0, 0, []byte(corosyncConf(c.Nodes))},
			entry{"etc-corosync/authkey", 0o400, 0, 0, c.authkeys["corosync"]},
			entry{"var-lib-pacemaker/cib/cib.xml", 0o600, uid, gid, []byte(cibXML(c.Nodes, c.Remote))})
	}
	for _, e := range entries {
		p := filepath.Join(disk, e.path)
		if e.content == nil {
			err = os.Mkdir(p, e.mode)
		} else {
			err = os.WriteFile(p, e.content, e.mode)
		}
		if err == nil {
			err = os.Chmod(p, e.mode)
		}
		if err == nil {
			err = os.Chown(p, e.uid, e.gid)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
