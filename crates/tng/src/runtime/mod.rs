//! Start-up order, readiness and shutdown of a configured gateway: the one place that turns
//! the configuration into running entries (capture → transport → exit) and the control
//! interface.
//!
//! Every ingress (in order), then every egress, then the control interface is constructed —
//! listeners bound, key managers started — before anything serves, so a start-up failure
//! leaves nothing half-running. `/readyz` turns 200 once every service accepts connections.

mod dedicated;
mod egress;
mod ingress;
mod labels;
mod udp;

use std::sync::Arc;

use tng_config::{Config, EgressMode, IngressMode};
use tracing::{info, warn};

use crate::control::{ControlInterface, Readiness, Status};
use crate::shutdown::{self, Shutdown};
use egress::EgressInstance;
use ingress::IngressInstance;
use udp::{UdpEgressInstance, UdpEntry, UdpIngressInstance};

/// Runs the gateway until SIGINT/SIGTERM. `telemetry` (built before logging, which carries
/// its trace layer) gets every entry's metrics and makes its final export last.
pub async fn run(config: Config, telemetry: Arc<tng_telemetry::Telemetry>) -> anyhow::Result<()> {
    serve(config, telemetry, None, shutdown::signal()).await
}

/// Runs the gateway until `stop` resolves (with the name of what stopped it). `ready` is
/// told once every ingress and egress accepts connections.
pub async fn serve(
    config: Config,
    telemetry: Arc<tng_telemetry::Telemetry>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    stop: impl std::future::Future<Output = std::io::Result<&'static str>>,
) -> anyhow::Result<()> {
    let (trigger, shutdown) = shutdown::channel();
    let status = Status::default();
    let readiness = Readiness::new(config.ingress.len() + config.egress.len());
    let uses_netfilter = config.ingress.iter().any(|i| {
        matches!(
            i.mode,
            IngressMode::Netfilter(_) | IngressMode::NetfilterUdp(_)
        )
    }) || config.egress.iter().any(|e| {
        matches!(
            e.mode,
            EgressMode::Netfilter(_) | EgressMode::NetfilterUdp(_)
        )
    });
    // Held for the life of the process: two gateways in one namespace would fight over rules.
    let _lock = if uses_netfilter {
        Some(tng_capture::lock::acquire()?)
    } else {
        None
    };

    // UDP entries start serving on their own threads as soon as they are bound; if anything
    // later fails to bind, they are stopped (and their capture rules removed) before the error
    // is returned.
    let mut udp_done = Vec::new();
    let bound = bind_all(
        &config,
        &status,
        &telemetry,
        &shutdown,
        &readiness,
        &mut udp_done,
    )
    .await;
    let (ingresses, egresses, control) = match bound {
        Ok(bound) => bound,
        Err(err) => {
            trigger.trigger();
            for done in udp_done {
                let _ = done.await;
            }
            return Err(err);
        }
    };

    let mut tasks = Vec::new();
    for ingress in ingresses {
        tasks.push(tokio::spawn(
            ingress.serve(shutdown.clone(), readiness.clone()),
        ));
    }
    for egress in egresses {
        tasks.push(tokio::spawn(
            egress.serve(shutdown.clone(), readiness.clone()),
        ));
    }
    for done in udp_done {
        tasks.push(tokio::spawn(async move {
            let _ = done.await;
        }));
    }
    if let Some(control) = control {
        tasks.push(tokio::spawn(control.serve(shutdown.clone())));
    }
    {
        let (readiness, telemetry) = (readiness.clone(), telemetry.clone());
        tokio::spawn(async move {
            readiness.ready().await;
            telemetry.set_live(true);
            if let Some(ready) = ready {
                let _ = ready.send(());
            }
        });
    }
    if config.ingress.is_empty() && config.egress.is_empty() {
        warn!("the configuration defines no ingress and no egress");
    }
    info!("tng started");

    let signal = stop.await?;
    if signal.starts_with("SIG") {
        info!("{signal} received: no longer accepting connections, draining in-flight requests");
    } else {
        info!("{signal}: no longer accepting connections, draining in-flight requests");
    }
    trigger.trigger();
    for task in tasks {
        let _ = task.await;
    }
    // Last, so the final export sees every connection that drained.
    match Arc::try_unwrap(telemetry) {
        Ok(telemetry) => telemetry.shutdown().await,
        Err(_) => warn!("telemetry still in use at exit; its final export is skipped"),
    }
    Ok(())
}

type Bound = (
    Vec<IngressInstance>,
    Vec<EgressInstance>,
    Option<ControlInterface>,
);

async fn bind_all(
    config: &Config,
    status: &Status,
    telemetry: &Arc<tng_telemetry::Telemetry>,
    shutdown: &Shutdown,
    readiness: &Readiness,
    udp_done: &mut Vec<tokio::sync::oneshot::Receiver<()>>,
) -> anyhow::Result<Bound> {
    let mut ingresses = Vec::new();
    for ingress in &config.ingress {
        if ingress.mode.is_udp() {
            let name = format!("tng-udp-ingress-{}", ingress.id);
            udp_done.push(
                start_udp::<UdpIngressInstance>(
                    name,
                    ingress.clone(),
                    telemetry,
                    shutdown,
                    readiness,
                )
                .await?,
            );
        } else {
            ingresses.push(IngressInstance::bind(ingress, status, telemetry).await?);
        }
    }
    let mut egresses = Vec::new();
    for egress in &config.egress {
        if egress.mode.is_udp() {
            let name = format!("tng-udp-egress-{}", egress.id);
            udp_done.push(
                start_udp::<UdpEgressInstance>(
                    name,
                    egress.clone(),
                    telemetry,
                    shutdown,
                    readiness,
                )
                .await?,
            );
        } else {
            egresses.push(EgressInstance::bind(egress, shutdown, status, telemetry).await?);
        }
    }
    let control = match &config.control_interface {
        Some(control) => Some(
            ControlInterface::bind(
                control,
                status.clone(),
                readiness.clone(),
                telemetry.clone(),
            )
            .await?,
        ),
        None => None,
    };
    Ok((ingresses, egresses, control))
}

/// Binds one UDP entry on its own thread and, once bound, serves it there until shutdown.
async fn start_udp<E: UdpEntry>(
    name: String,
    entry: E::Config,
    telemetry: &Arc<tng_telemetry::Telemetry>,
    shutdown: &Shutdown,
    readiness: &Readiness,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    let (telemetry, shutdown, readiness) = (telemetry.clone(), shutdown.clone(), readiness.clone());
    dedicated::start(name, move |bound| async move {
        match E::bind(&entry, &telemetry).await {
            Ok(instance) => {
                // The final export waits for every handle to the telemetry.
                drop(telemetry);
                let _ = bound.send(Ok(()));
                instance.serve(shutdown, readiness).await;
            }
            Err(err) => {
                let _ = bound.send(Err(err));
            }
        }
    })
    .await
}

/// Refuses, before anything is bound, what the configuration may say but this build does not
/// do yet. Attestation above all: running without it when the operator asked for it would
/// silently drop the security guarantee.
pub fn check_supported(config: &Config) -> anyhow::Result<()> {
    let entries = config
        .ingress
        .iter()
        .map(|i| ("add_ingress", i.id, &i.ra, None))
        .chain(config.egress.iter().map(|e| {
            let key = e.ohttp.as_ref().map(|o| &o.key);
            ("add_egress", e.id, &e.ra, key)
        }));
    for (kind, id, ra, key) in entries {
        if let Some(attest) = &ra.attest {
            crate::attestation::check_agent_socket(&format!("{kind}[{id}]"), attest)?;
        }
        if let Some(tng_config::KeySource::PeerShared(peer)) = key {
            if let Some(attest) = &peer.ra.attest {
                crate::attestation::check_agent_socket(&format!("{kind}[{id}].ohttp.key"), attest)?;
            }
        }
    }
    Ok(())
}
