//! Starting an instance's VM: its root disk (an overlay of the cached
//! image, or its EBS root volume), the network plug, the hooks and QEMU,
//! each undone when a later step fails.

use super::*;

pub(super) struct StartCtx {
    pub(super) shared: Arc<Shared>,
    pub(super) id: String,
    pub(super) dir: PathBuf,
    pub(super) run_dir: PathBuf,
    pub(super) spec: InstanceSpec,
    pub(super) volumes: Vec<AttachedVolume>,
}

/// Everything that makes a stopped instance run, undone on failure.
pub(super) async fn start(ctx: StartCtx) -> Result<Vm, String> {
    let overlay = ctx.dir.join(ROOT_OVERLAY);
    let overlay_existed = overlay.exists();
    let result = start_steps(&ctx, &overlay).await;
    if result.is_err() {
        unplug(&ctx.shared, &ctx.spec).await;
        if !overlay_existed
            && let Err(e) = std::fs::remove_file(&overlay)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %overlay.display(), error = %e, "removing the new overlay");
        }
    }
    result
}

/// Boot of an image-backed instance: its image parts cached and pinned,
/// its root overlay created if missing.
pub(super) async fn image_boot(ctx: &StartCtx, overlay: &Path) -> Result<Boot, String> {
    let cache = &ctx.shared.cache;
    let (base, base_artifacts) = match &ctx.spec.image {
        BootImage::Paravirtual {
            kernel,
            ramdisk,
            root,
            ..
        } => {
            let mut all = vec![kernel, root];
            all.extend(ramdisk);
            (root, all)
        }
        BootImage::Hvm { disk } => (disk, vec![disk]),
        BootImage::Ebs { .. } => return Err("an EBS-backed instance has no image root".into()),
    };
    let image_err = |e: CacheError| format!("image: {e}");
    for artifact in &base_artifacts {
        cache.pin(artifact, &ctx.id).await.map_err(image_err)?;
    }
    let base_path = cache.get(base).await.map_err(image_err)?;
    let boot = match &ctx.spec.image {
        BootImage::Paravirtual {
            kernel,
            ramdisk,
            cmdline,
            ..
        } => {
            let kernel = cache.get(kernel).await.map_err(image_err)?;
            let initrd = match ramdisk {
                Some(r) => Some(cache.get(r).await.map_err(image_err)?),
                None => None,
            };
            Boot::Kernel {
                kernel,
                initrd,
                cmdline: cmdline.clone(),
            }
        }
        BootImage::Hvm { .. } | BootImage::Ebs { .. } => Boot::Disk,
    };
    tokio::fs::create_dir_all(&ctx.dir)
        .await
        .map_err(|e| format!("create {}: {e}", ctx.dir.display()))?;
    if !overlay.exists() {
        let size = ctx.spec.disk_gib.saturating_mul(GIB);
        match create_overlay(&base_path, overlay, Some(size).filter(|s| *s > 0)).await {
            Ok(()) => {}
            // The image is larger than the instance type's disk: keep its size.
            Err(CacheError::OverlayTooSmall { .. }) => create_overlay(&base_path, overlay, None)
                .await
                .map_err(|e| format!("root disk: {e}"))?,
            Err(e) => return Err(format!("root disk: {e}")),
        }
    }
    Ok(boot)
}

pub(super) fn overlay_disk(overlay: &Path) -> Disk {
    Disk {
        source: DiskSource::file(overlay, DiskFormat::Qcow2),
        read_only: false,
        id: None,
        serial: None,
    }
}

pub(super) async fn start_steps(ctx: &StartCtx, overlay: &Path) -> Result<Vm, String> {
    let shared = &ctx.shared;
    let cache = &shared.cache;
    let image_err = |e: CacheError| format!("image: {e}");
    let (boot, root_disk) = match &ctx.spec.image {
        BootImage::Ebs {
            root_volume_id,
            kernel,
            ramdisk,
            cmdline,
        } => {
            for artifact in kernel.iter().chain(ramdisk) {
                cache.pin(artifact, &ctx.id).await.map_err(image_err)?;
            }
            let boot = match kernel {
                Some(kernel) => Boot::Kernel {
                    kernel: cache.get(kernel).await.map_err(image_err)?,
                    initrd: match ramdisk {
                        Some(r) => Some(cache.get(r).await.map_err(image_err)?),
                        None => None,
                    },
                    cmdline: cmdline.clone(),
                },
                None => Boot::Disk,
            };
            if !shared.volumes.present(root_volume_id) {
                return Err(format!(
                    "the root volume {root_volume_id} is not on this node"
                ));
            }
            tokio::fs::create_dir_all(&ctx.dir)
                .await
                .map_err(|e| format!("create {}: {e}", ctx.dir.display()))?;
            (boot, volume_disk(shared, root_volume_id))
        }
        BootImage::Paravirtual { .. } | BootImage::Hvm { .. } => {
            (image_boot(ctx, overlay).await?, overlay_disk(overlay))
        }
    };
    shared
        .hooks
        .run(HookEvent::PreBoot, Some(&ctx.dir))
        .await
        .map_err(|e| hook_reason(&e))?;
    let prefix = plug(shared, &ctx.spec).await?;

    let accel = {
        let mut rx = shared.accel.clone();
        let resolved = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "the accelerator was never resolved".to_owned())?;
        match resolved.as_ref() {
            Some(Ok(choice)) => choice.accel,
            Some(Err(e)) => return Err(format!("accelerator: {e}")),
            None => return Err("the accelerator was never resolved".into()),
        }
    };
    let serial_log = ctx.dir.join(CONSOLE_LOG);
    if serial_log.exists() {
        // QEMU truncates the log; keep the previous boot's output.
        tokio::fs::rename(&serial_log, ctx.dir.join(CONSOLE_LOG_PREVIOUS))
            .await
            .map_err(|e| format!("rotate the console log: {e}"))?;
    }
    let nics = ctx
        .spec
        .nics
        .first()
        .map(|nic| Nic {
            backend: NicBackend::Tap {
                ifname: tap_name(&ctx.id),
            },
            mac: nic.mac.clone(),
        })
        .into_iter()
        .collect();
    let vm_spec = VmSpec {
        name: ctx.id.clone(),
        vcpus: ctx.spec.vcpus,
        memory_mib: ctx.spec.memory_mib,
        accel,
        cpu_model: None,
        boot,
        disks: std::iter::once(root_disk)
            .chain(
                ctx.volumes
                    .iter()
                    .map(|v| volume_disk(shared, &v.volume_id)),
            )
            .collect(),
        nics,
        serial_log,
        run_dir: ctx.run_dir.clone(),
        keep_on_shutdown: true,
    };
    // No snapshot reads a volume's file while QEMU opens it.
    let mut volume_ids: Vec<&str> = ctx
        .volumes
        .iter()
        .map(|v| v.volume_id.as_str())
        .chain(root_volume(&ctx.spec))
        .collect();
    volume_ids.sort_unstable();
    volume_ids.dedup();
    let mut data_locks = Vec::with_capacity(volume_ids.len());
    for id in volume_ids {
        data_locks.push(shared.volumes.lock_volume(id).await);
    }
    // A VM of this instance still running (a start interrupted by an agent
    // crash after the launch) is adopted rather than started twice.
    let vm = match RunningVm::adopt(&ctx.run_dir).await {
        Ok(vm) => vm,
        Err(_) => RunningVm::launch_prefixed(&prefix, &shared.qemu, &vm_spec)
            .await
            .map_err(|e| format!("QEMU: {e}"))?,
    };
    // QEMU has the files open (and locked) now.
    drop(data_locks);
    let events = vm.qmp().subscribe();
    Ok(Vm {
        vm: Arc::new(vm),
        events,
    })
}
