//! The engine: applies events to systems through the state machine
//! ([`crate::state::decide`]), stores the result in the [`Inventory`], then
//! carries out the actions (power). It runs the provisioning network's
//! services: dnsmasq, the HTTP server for iPXE scripts and the deploy
//! protocol ([`crate::http`]), a follower of dnsmasq's log (DHCP events) and
//! a clock that fails systems whose deadline passed.
//!
//! Events are applied one at a time (one lock), power calls run outside the
//! lock. Everything the engine needs after a restart is in the inventory
//! (states, tokens, absolute deadlines), and the machines keep running
//! meanwhile, so a killed controller's engine continues where it was.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use rand::RngCore;
use tokio::io::AsyncReadExt;

use crate::inventory::{Inventory, InventoryError, Selection};
use crate::model::{Distro, Install, Mac, Profile, State, Step, System, Wipe};
use crate::netboot::{self, DhcpLogEvent, Dnsmasq, LogFollower, NetbootError, ProvisioningNetwork};
use crate::power::{self, PowerOutcome, PowerState};
use crate::state::{Action, Decision, Event, Timeouts, decide};
use crate::template;

/// How often the check-in fallback probes a rebooting system's port.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Errors from the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The inventory failed or refused.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The boot services failed.
    #[error(transparent)]
    Netboot(#[from] NetbootError),
    /// The event does not apply.
    #[error("{0}")]
    Rejected(String),
    /// No such system, token or profile.
    #[error("{0}")]
    NotFound(String),
    /// A file could not be read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A byte stream (an image, a kernel).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Opens profile images by their location.
#[async_trait]
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// Opens `location`: its length and its bytes.
    async fn open(&self, location: &str) -> Result<(u64, ByteStream), EngineError>;
}

/// Images that are files (`location` is a path).
#[derive(Debug, Default, Clone, Copy)]
pub struct FileImages;

#[async_trait]
impl ImageSource for FileImages {
    async fn open(&self, location: &str) -> Result<(u64, ByteStream), EngineError> {
        file_stream(&PathBuf::from(location)).await
    }
}

/// Streams a file in 256 KiB chunks.
pub async fn file_stream(path: &std::path::Path) -> Result<(u64, ByteStream), EngineError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| EngineError::Io {
            context: format!("open {}", path.display()),
            source,
        })?;
    let len = file
        .metadata()
        .await
        .map_err(|source| EngineError::Io {
            context: format!("stat {}", path.display()),
            source,
        })?
        .len();
    let stream = futures_util::stream::try_unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), f)))
    });
    Ok((len, Box::pin(stream)))
}

/// The engine's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The provisioning network.
    pub network: ProvisioningNetwork,
    /// The deploy agent's kernel.
    pub agent_kernel: PathBuf,
    /// The deploy agent's initramfs.
    pub agent_initrd: PathBuf,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// How often deadlines and dnsmasq's log are checked.
    pub tick: Duration,
}

/// A report from the deploy agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentReport {
    /// It started.
    Started,
    /// It wrote this many bytes.
    Progress(u64),
    /// It wrote the image; the disk reads back with this digest.
    Written {
        /// SHA-256 of the image's length of disk.
        sha256: String,
    },
    /// It failed.
    Failed(String),
    /// The installer of an installer profile installed the system.
    Installed,
    /// The agent in wipe mode wiped the disk and read it back as zeros.
    Wiped,
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn no_image(profile: &str) -> EngineError {
    EngineError::NotFound(format!(
        "profile {profile} installs with an installer: it has no image"
    ))
}

fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The bare-metal engine (cheap to clone).
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EngineConfig,
    inventory: Arc<dyn Inventory>,
    images: Arc<dyn ImageSource>,
    lock: tokio::sync::Mutex<()>,
    dnsmasq: Dnsmasq,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Engine {
    /// Starts the provisioning network's services and the engine's loops,
    /// and resumes what was under way (systems powering off, powering on).
    pub async fn start(
        config: EngineConfig,
        inventory: Arc<dyn Inventory>,
        images: Arc<dyn ImageSource>,
    ) -> Result<Self, EngineError> {
        let systems = inventory.systems().await?;
        let dnsmasq = Dnsmasq::ensure(&config.network, &systems).await?;
        let follower = LogFollower::new(dnsmasq.log_path());
        let listener = crate::http::bind(&config.network).await?;
        let engine = Self {
            inner: Arc::new(Inner {
                config,
                inventory,
                images,
                lock: tokio::sync::Mutex::new(()),
                dnsmasq,
                tasks: std::sync::Mutex::new(Vec::new()),
            }),
        };
        let server = crate::http::serve(listener, engine.clone());
        let clock = tokio::spawn(engine.clone().clock(follower));
        engine.push_task(server);
        engine.push_task(clock);
        engine.resume().await;
        Ok(engine)
    }

    fn push_task(&self, t: tokio::task::JoinHandle<()>) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(t);
    }

    /// Stops the engine's tasks; with `stop_dnsmasq`, dnsmasq too (a
    /// controller that stops for good; a restart leaves it running).
    pub async fn shutdown(&self, stop_dnsmasq: bool) {
        let tasks: Vec<_> = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect();
        for t in &tasks {
            t.abort();
        }
        // An aborted task is dropped (and the provisioning listener with
        // it) only when the runtime gets to it: wait, so a restarted engine
        // can bind the same address at once.
        for t in tasks {
            let _ = t.await;
        }
        if stop_dnsmasq {
            self.inner.dnsmasq.stop().await;
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The inventory.
    pub fn inventory(&self) -> &Arc<dyn Inventory> {
        &self.inner.inventory
    }

    /// Rewrites dnsmasq's host table from the inventory (after systems
    /// were added, changed or removed).
    pub async fn sync_dhcp(&self) -> Result<(), EngineError> {
        let systems = self.inner.inventory.systems().await?;
        self.inner.dnsmasq.set_hosts(&systems)?;
        Ok(())
    }

    /// Reserves systems for `owner` (all or none) and installs `profile` on
    /// them. Returns them as they are after power-on was sent.
    pub async fn run_instances(
        &self,
        selection: &Selection,
        profile: &str,
        owner: &str,
    ) -> Result<Vec<System>, EngineError> {
        self.profile(profile).await?;
        let reserved = {
            let _g = self.inner.lock.lock().await;
            self.inner
                .inventory
                .reserve(selection, owner, now_millis())
                .await?
        };
        tracing::info!(owner, profile, systems = ?reserved.iter().map(|s| &s.name).collect::<Vec<_>>(), "reserved");
        let mut out = Vec::new();
        for s in reserved {
            out.push(self.provision(&s.name, profile).await?);
        }
        Ok(out)
    }

    /// Installs `profile` on a reserved (or running) system.
    pub async fn provision(&self, name: &str, profile: &str) -> Result<System, EngineError> {
        self.profile(profile).await?;
        self.handle(
            name,
            Event::Provision {
                profile: profile.to_owned(),
                token: new_token(),
            },
        )
        .await
    }

    /// Reserves systems without installing anything.
    pub async fn reserve(
        &self,
        selection: &Selection,
        owner: &str,
    ) -> Result<Vec<System>, EngineError> {
        let _g = self.inner.lock.lock().await;
        Ok(self
            .inner
            .inventory
            .reserve(selection, owner, now_millis())
            .await?)
    }

    /// Changes a system's ownership or provisioning fields with `edit`
    /// while no event is applied (the engine's lock), and stores the result.
    /// `edit` refuses by returning an error.
    pub async fn edit(
        &self,
        name: &str,
        edit: impl FnOnce(&mut System) -> Result<(), EngineError> + Send,
    ) -> Result<System, EngineError> {
        let _g = self.inner.lock.lock().await;
        let mut system = self.system(name).await?;
        edit(&mut system)?;
        self.inner.inventory.save_state(&system).await?;
        Ok(system)
    }

    /// Returns a system to the pool (power off, owner cleared), wiping
    /// its disk first if its wipe policy ([`Engine::wipe_policy`]) says so.
    pub async fn release(&self, name: &str) -> Result<System, EngineError> {
        let system = self.system(name).await?;
        match self.wipe_policy(&system).await? {
            Wipe::None => self.handle(name, Event::Release).await,
            mode => {
                self.handle(
                    name,
                    Event::Wipe {
                        mode,
                        token: new_token(),
                    },
                )
                .await
            }
        }
    }

    /// The disk wipe policy that applies to `system`: its own, else its
    /// group's, else [`Wipe::None`].
    pub async fn wipe_policy(&self, system: &System) -> Result<Wipe, EngineError> {
        if let Some(w) = system.wipe {
            return Ok(w);
        }
        Ok(self
            .inner
            .inventory
            .group_wipe(&system.group)
            .await?
            .unwrap_or_default())
    }

    /// Releases every system `owner` has.
    pub async fn release_owner(&self, owner: &str) -> Result<Vec<System>, EngineError> {
        let mut out = Vec::new();
        for s in self.inner.inventory.systems().await? {
            if s.owner.as_deref() == Some(owner) {
                out.push(self.release(&s.name).await?);
            }
        }
        Ok(out)
    }

    async fn profile(&self, name: &str) -> Result<Profile, EngineError> {
        self.inner
            .inventory
            .profile(name)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no profile named {name}")))
    }

    async fn system(&self, name: &str) -> Result<System, EngineError> {
        self.inner
            .inventory
            .system(name)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no system named {name}")))
    }

    /// Applies `event` to system `name` and carries out the resulting
    /// actions (and the events their results cause). Returns the system as
    /// it is afterwards.
    pub async fn handle(&self, name: &str, event: Event) -> Result<System, EngineError> {
        let mut queue = vec![event];
        let mut last = None;
        while let Some(event) = queue.pop() {
            let (system, actions) = {
                let _g = self.inner.lock.lock().await;
                let system = self.system(name).await?;
                match decide(&system, &event, now_millis(), &self.inner.config.timeouts) {
                    Decision::Ignore => (system, vec![]),
                    Decision::Reject(msg) => return Err(EngineError::Rejected(msg)),
                    Decision::Apply { system, actions } => {
                        self.inner.inventory.save_state(&system).await?;
                        tracing::info!(
                            system = %system.name,
                            ?event,
                            state = ?system.state,
                            "metal state"
                        );
                        (*system, actions)
                    }
                }
            };
            for action in actions {
                if let Some(follow) = self.act(&system, action).await {
                    queue.push(follow);
                }
            }
            last = Some(system);
        }
        match last {
            Some(s) => Ok(self.inner.inventory.system(&s.name).await?.unwrap_or(s)),
            None => self.system(name).await,
        }
    }

    /// Performs one action; returns the event its result causes.
    async fn act(&self, system: &System, action: Action) -> Option<Event> {
        let driver = power::driver(&system.name, &system.mac, &system.power);
        match action {
            Action::PowerCycleNetboot => match driver.power_on_netboot().await {
                Ok(PowerOutcome::Done) => None,
                Ok(PowerOutcome::Pending(what)) => {
                    tracing::warn!(system = %system.name, "waiting for an operator: {what}");
                    None
                }
                Err(e) => Some(Event::PowerFailed {
                    reason: e.to_string(),
                }),
            },
            Action::PowerOff => match driver.power_off().await {
                Ok(PowerOutcome::Done) => Some(Event::PoweredOff),
                Ok(PowerOutcome::Pending(what)) => {
                    tracing::warn!(system = %system.name, "waiting for an operator: {what}");
                    None
                }
                Err(e) => Some(Event::PowerFailed {
                    reason: e.to_string(),
                }),
            },
        }
    }

    /// After a restart: systems that were being powered off are powered off
    /// (idempotent); systems waiting for power-on that are off get it again.
    async fn resume(&self) {
        let Ok(systems) = self.inner.inventory.systems().await else {
            return;
        };
        for s in systems {
            let driver = power::driver(&s.name, &s.mac, &s.power);
            match s.state {
                State::Releasing => {
                    if let Some(e) = self.act(&s, Action::PowerOff).await
                        && let Err(err) = self.handle(&s.name, e).await
                    {
                        tracing::warn!(system = %s.name, error = %err, "resume release");
                    }
                }
                State::Provisioning {
                    step: Step::PoweringOn,
                }
                | State::Wiping { .. }
                    if matches!(driver.status().await, Ok(PowerState::Off)) =>
                {
                    if let Some(e) = self.act(&s, Action::PowerCycleNetboot).await
                        && let Err(err) = self.handle(&s.name, e).await
                    {
                        tracing::warn!(system = %s.name, error = %err, "resume power-on");
                    }
                }
                _ => {}
            }
        }
    }

    async fn clock(self, mut follower: LogFollower) {
        let mut probed = HashMap::new();
        let mut tick = tokio::time::interval(self.inner.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for line in follower.poll() {
                match netboot::parse_log_line(&line) {
                    Some(DhcpLogEvent::Ack { mac, ip }) => {
                        if let Ok(Some(s)) = self.by_mac(&mac).await {
                            tracing::debug!(system = %s.name, %ip, "DHCP lease");
                            if let Err(e) = self.handle(&s.name, Event::DhcpAck).await {
                                tracing::warn!(system = %s.name, error = %e, "DHCP event");
                            }
                        }
                    }
                    Some(DhcpLogEvent::Ignored { mac }) => {
                        tracing::info!(%mac, "DHCP request from an unknown MAC ignored");
                    }
                    None => {}
                }
            }
            let now = now_millis();
            let Ok(systems) = self.inner.inventory.systems().await else {
                continue;
            };
            self.probe_ports(&systems, &mut probed).await;
            for s in systems {
                if s.state.is_busy()
                    && s.deadline.is_some_and(|d| now >= d)
                    && let Err(e) = self.handle(&s.name, Event::Tick).await
                {
                    tracing::warn!(system = %s.name, error = %e, "deadline");
                }
            }
        }
    }

    async fn by_mac(&self, mac: &Mac) -> Result<Option<System>, EngineError> {
        Ok(self
            .inner
            .inventory
            .systems()
            .await?
            .into_iter()
            .find(|s| &s.mac == mac))
    }

    async fn by_token(&self, token: &str) -> Result<System, EngineError> {
        self.inner
            .inventory
            .systems()
            .await?
            .into_iter()
            .find(|s| s.token.as_deref() == Some(token))
            .ok_or_else(|| EngineError::NotFound("unknown provisioning token".into()))
    }

    /// The iPXE script for the NIC with this MAC (and the event it is).
    pub async fn ipxe_script(&self, mac: &Mac) -> Result<String, EngineError> {
        let Some(s) = self.by_mac(mac).await? else {
            return Err(EngineError::NotFound(format!("no system with MAC {mac}")));
        };
        if let (State::Wiping { mode }, true, Some(token)) = (&s.state, s.netboot, &s.token) {
            let script = netboot::wipe_script(
                &self.inner.config.network.base_url(),
                token,
                s.disk.as_deref(),
                *mode,
            );
            self.handle(&s.name, Event::IpxeFetched).await?;
            return Ok(script);
        }
        let deploying = s.netboot && matches!(s.state, State::Provisioning { .. });
        match (&s.token, deploying) {
            (Some(token), true) => {
                let profile = match &s.profile {
                    Some(p) => self.profile(p).await?,
                    None => return Ok(netboot::local_boot_script()),
                };
                let base = self.inner.config.network.base_url();
                let script = match &profile.install {
                    Install::Image { .. } => {
                        netboot::deploy_script(&base, token, s.disk.as_deref(), &profile.agent_args)
                    }
                    Install::Installer {
                        distro,
                        kernel_args,
                        ..
                    } => {
                        let d = self.distro(distro).await?;
                        let args = format!("{} {}", d.kernel_args.trim(), kernel_args.trim());
                        let vars = self.answer_variables(&s, &profile);
                        match template::render(&args, &vars) {
                            Ok(args) => netboot::installer_script(&base, token, distro, &args),
                            Err(e) => {
                                return self.fail_render(&s.name, "kernel arguments", &e).await;
                            }
                        }
                    }
                };
                self.handle(&s.name, Event::IpxeFetched).await?;
                Ok(script)
            }
            _ => Ok(netboot::local_boot_script()),
        }
    }

    async fn distro(&self, name: &str) -> Result<Distro, EngineError> {
        self.inner
            .inventory
            .distro(name)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no distro named {name}")))
    }

    /// A template that cannot be rendered fails the system: its installer
    /// cannot go on.
    async fn fail_render<T>(
        &self,
        name: &str,
        what: &str,
        e: &template::TemplateError,
    ) -> Result<T, EngineError> {
        let reason = format!("cannot render the {what}: {e}");
        self.handle(
            name,
            Event::AgentFailed {
                reason: reason.clone(),
            },
        )
        .await?;
        Err(EngineError::Rejected(reason))
    }

    /// The variables an answer-file template of `profile` sees for
    /// `system`: the profile's, overridden by the system's, overridden by
    /// the built-in ones (`system`, `hostname`, `ip`, `mac`, `prefix`,
    /// `netmask`, `group`, `owner`, `profile`, `distro`, `disk` if set,
    /// `server`, `server_url`, `token`, `answer_url`, `report_url`,
    /// `checkin_url`).
    pub fn answer_variables(&self, system: &System, profile: &Profile) -> BTreeMap<String, String> {
        let net = &self.inner.config.network;
        let base = net.base_url();
        let mut v = profile.variables.clone();
        v.extend(system.variables.clone());
        let mut set = |k: &str, val: String| {
            v.insert(k.to_owned(), val);
        };
        set("system", system.name.clone());
        set("hostname", system.hostname.clone());
        set("ip", system.ip.to_string());
        set("mac", system.mac.to_string());
        set("prefix", net.prefix.to_string());
        set("netmask", net.netmask().to_string());
        set("group", system.group.clone());
        set("owner", system.owner.clone().unwrap_or_default());
        set("profile", profile.name.clone());
        if let Install::Installer { distro, .. } = &profile.install {
            set("distro", distro.clone());
        }
        if let Some(d) = &system.disk {
            set("disk", d.clone());
        }
        set("server", net.address.to_string());
        set("server_url", base.clone());
        if let Some(t) = &system.token {
            set("token", t.clone());
            set("answer_url", format!("{base}/answer/{t}"));
            set("report_url", format!("{base}/deploy/{t}/report"));
            set("checkin_url", format!("{base}/checkin/{t}"));
        }
        v
    }

    /// The answer file of the system being installed with `token`'s
    /// installer profile, rendered from its template (the installer
    /// fetching it is the event "installer started").
    pub async fn answer_file(&self, token: &str) -> Result<String, EngineError> {
        let (s, p) = self.deploying(token).await?;
        let Install::Installer { template: t, .. } = &p.install else {
            return Err(EngineError::NotFound(format!(
                "profile {} writes an image: it has no answer file",
                p.name
            )));
        };
        let vars = self.answer_variables(&s, &p);
        match template::render(t, &vars) {
            Ok(text) => {
                self.handle(&s.name, Event::AnswerFetched).await?;
                Ok(text)
            }
            Err(e) => self.fail_render(&s.name, "answer file", &e).await,
        }
    }

    /// Renders `profile`'s answer file for system `name` as it would be
    /// served now (an administrator's preview; no event). A system that is
    /// not being installed has `TOKEN` where its token would be.
    pub async fn preview_answer_file(
        &self,
        name: &str,
        profile: &str,
    ) -> Result<String, EngineError> {
        let mut s = self.system(name).await?;
        if s.token.is_none() {
            // Not being installed: its URLs show where the token goes.
            s.token = Some("TOKEN".into());
        }
        let p = self.profile(profile).await?;
        let Install::Installer { template: t, .. } = &p.install else {
            return Err(EngineError::Rejected(format!(
                "profile {profile} writes an image: it has no answer file"
            )));
        };
        template::render(t, &self.answer_variables(&s, &p))
            .map_err(|e| EngineError::Rejected(format!("cannot render the answer file: {e}")))
    }

    /// The distro kernel or initrd of an installer profile, for a valid token.
    pub async fn distro_file(
        &self,
        token: &str,
        initrd: bool,
    ) -> Result<(u64, ByteStream), EngineError> {
        let (_, p) = self.deploying(token).await?;
        let Install::Installer { distro, .. } = &p.install else {
            return Err(EngineError::NotFound(format!(
                "profile {} writes an image: it boots no distro",
                p.name
            )));
        };
        let d = self.distro(distro).await?;
        self.inner
            .images
            .open(if initrd { &d.initrd } else { &d.kernel })
            .await
    }

    async fn deploying(&self, token: &str) -> Result<(System, Profile), EngineError> {
        let s = self.by_token(token).await?;
        if !matches!(s.state, State::Provisioning { .. }) || !s.netboot {
            return Err(EngineError::Rejected(format!(
                "system {} is not being deployed (it is {})",
                s.name,
                s.state.name()
            )));
        }
        let p = match &s.profile {
            Some(p) => self.profile(p).await?,
            None => return Err(EngineError::NotFound("system has no profile".into())),
        };
        Ok((s, p))
    }

    /// The deploy agent's kernel or initramfs, for a valid token.
    pub async fn agent_file(
        &self,
        token: &str,
        initrd: bool,
    ) -> Result<(u64, ByteStream), EngineError> {
        let wiping = self
            .by_token(token)
            .await
            .is_ok_and(|s| s.netboot && matches!(s.state, State::Wiping { .. }));
        let c = &self.inner.config;
        let file = if initrd {
            &c.agent_initrd
        } else {
            &c.agent_kernel
        };
        if wiping {
            return file_stream(file).await;
        }
        let (_, p) = self.deploying(token).await?;
        if !matches!(p.install, Install::Image { .. }) {
            return Err(EngineError::NotFound(format!(
                "profile {} boots its distro's installer, not the deploy agent",
                p.name
            )));
        }
        file_stream(file).await
    }

    /// The profile image's size and digest, for a valid token.
    pub async fn manifest(&self, token: &str) -> Result<(u64, String), EngineError> {
        let (_, p) = self.deploying(token).await?;
        match p.install {
            Install::Image { size, sha256, .. } => Ok((size, sha256)),
            Install::Installer { .. } => Err(no_image(&p.name)),
        }
    }

    /// The profile image, for a valid token.
    pub async fn image(&self, token: &str) -> Result<(u64, ByteStream), EngineError> {
        let (_, p) = self.deploying(token).await?;
        match &p.install {
            Install::Image { location, .. } => self.inner.images.open(location).await,
            Install::Installer { .. } => Err(no_image(&p.name)),
        }
    }

    /// A deploy agent's report.
    pub async fn agent_report(
        &self,
        token: &str,
        report: AgentReport,
    ) -> Result<System, EngineError> {
        let s = self.by_token(token).await?;
        let wiping = matches!(s.state, State::Wiping { .. });
        let event = match report {
            AgentReport::Wiped if wiping => Event::AgentWiped,
            AgentReport::Wiped => {
                return Err(EngineError::Rejected(format!(
                    "system {} is not being wiped (it is {})",
                    s.name,
                    s.state.name()
                )));
            }
            AgentReport::Written { .. } | AgentReport::Installed if wiping => {
                return Err(EngineError::Rejected(format!(
                    "system {} is being wiped: report event=wiped",
                    s.name
                )));
            }
            AgentReport::Started => Event::AgentStarted,
            AgentReport::Progress(bytes) => Event::AgentProgress { bytes },
            AgentReport::Failed(reason) => Event::AgentFailed { reason },
            AgentReport::Written { sha256 } => {
                let profile = match &s.profile {
                    Some(p) => self.profile(p).await?,
                    None => return Err(EngineError::NotFound("system has no profile".into())),
                };
                let Install::Image {
                    sha256: expected, ..
                } = profile.install
                else {
                    return Err(EngineError::Rejected(format!(
                        "profile {} installs with an installer: report event=installed",
                        profile.name
                    )));
                };
                Event::AgentWritten { sha256, expected }
            }
            AgentReport::Installed => {
                let profile = match &s.profile {
                    Some(p) => self.profile(p).await?,
                    None => return Err(EngineError::NotFound("system has no profile".into())),
                };
                if !matches!(profile.install, Install::Installer { .. }) {
                    return Err(EngineError::Rejected(format!(
                        "profile {} writes an image: report event=written&sha256=…",
                        profile.name
                    )));
                }
                Event::Installed
            }
        };
        self.handle(&s.name, event).await
    }

    /// The installed system's check-in.
    pub async fn check_in(&self, token: &str) -> Result<System, EngineError> {
        self.check_in_with(token, &[]).await
    }

    /// The installed system's check-in with what it says about itself
    /// (`key=value` facts, e.g. its host name): they are kept in the
    /// system's last event.
    pub async fn check_in_with(
        &self,
        token: &str,
        facts: &[(String, String)],
    ) -> Result<System, EngineError> {
        let s = self.by_token(token).await?;
        let was_running = s.state == State::Running;
        let after = self.handle(&s.name, Event::CheckedIn).await?;
        if was_running || after.state != State::Running || facts.is_empty() {
            return Ok(after);
        }
        let said: Vec<String> = facts
            .iter()
            .take(16)
            .map(|(k, v)| {
                let clean = |x: &str, n: usize| {
                    x.chars()
                        .filter(|c| !c.is_control())
                        .take(n)
                        .collect::<String>()
                };
                format!("{}={}", clean(k, 32), clean(v, 128))
            })
            .collect();
        self.edit(&s.name, |sys| {
            sys.last_event = Some(format!("installed system checked in: {}", said.join(" ")));
            Ok(())
        })
        .await
    }

    /// Probes the check-in fallback port of every rebooting system (at most
    /// every [`PROBE_EVERY`]); a system whose port answers is running.
    async fn probe_ports(&self, systems: &[System], last: &mut HashMap<String, Instant>) {
        let rebooting: Vec<&System> = systems
            .iter()
            .filter(|s| {
                s.state
                    == State::Provisioning {
                        step: Step::Rebooting,
                    }
            })
            .collect();
        last.retain(|n, _| rebooting.iter().any(|s| &s.name == n));
        for s in rebooting {
            if last.get(&s.name).is_some_and(|t| t.elapsed() < PROBE_EVERY) {
                continue;
            }
            let Some(profile) = s.profile.as_deref() else {
                continue;
            };
            let Ok(Some(p)) = self.inner.inventory.profile(profile).await else {
                continue;
            };
            let Some(port) = p.check_in_port else {
                continue;
            };
            last.insert(s.name.clone(), Instant::now());
            let engine = self.clone();
            let name = s.name.clone();
            let addr = SocketAddrV4::new(s.ip, port);
            tokio::spawn(async move {
                let netns = engine.inner.config.network.netns.clone();
                if netboot::tcp_answers(netns.as_deref(), addr, Duration::from_secs(1)).await {
                    tracing::info!(system = %name, %addr, "check-in fallback: port answers");
                    if let Err(e) = engine.handle(&name, Event::PortAnswered { port }).await {
                        tracing::warn!(system = %name, error = %e, "port check-in");
                    }
                }
            });
        }
    }

    /// An operator confirms a manual power-off.
    pub async fn confirm_powered_off(&self, name: &str) -> Result<System, EngineError> {
        self.handle(name, Event::PoweredOff).await
    }

    /// Every system.
    pub async fn systems(&self) -> Result<Vec<System>, EngineError> {
        Ok(self.inner.inventory.systems().await?)
    }
}
