//! Policy evaluation benchmarks.
//!
//! ```text
//! cargo bench --bench policy
//! ```
//!
//! Measures [`bursar::policy::evaluate`] with a prebuilt request and facts for
//! one agent's 10 policies, and for tenants of 1,000 and 10,000 policies of
//! which the same 10 apply to the agent (the rest belong to other agents and
//! teams). The workload is shared with the peer comparison in `benches/peers/`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/workload.rs"]
mod workload;

fn evaluation(c: &mut Criterion) {
    let cases = workload::cases();
    let ordinary = &cases[0];
    let mut group = c.benchmark_group("evaluate");
    for (name, total) in [
        ("agent_10_policies", 10),
        ("tenant_1000_policies", 1_000),
        ("tenant_10000_policies", 10_000),
    ] {
        let compiled = workload::compile(&workload::tenant(total));
        for case in &cases {
            let (outcome, codes) = workload::bursar_answer(&compiled, case);
            assert_eq!(
                (
                    outcome.as_str(),
                    codes.iter().map(String::as_str).collect::<Vec<_>>()
                ),
                (case.outcome, case.codes.clone()),
                "{}",
                case.name
            );
        }
        group.bench_function(format!("{name}/ordinary_purchase"), |b| {
            b.iter(|| {
                bursar::policy::evaluate(
                    black_box(&compiled),
                    black_box(&ordinary.request),
                    black_box(&ordinary.facts),
                )
            })
        });
        group.bench_function(format!("{name}/all_{}_requests", cases.len()), |b| {
            b.iter(|| {
                for case in &cases {
                    black_box(bursar::policy::evaluate(
                        black_box(&compiled),
                        &case.request,
                        &case.facts,
                    ));
                }
            })
        });
    }
    group.finish();

    // The same evaluation with a host's usual subscriber installed (formatted
    // lines at INFO into a sink): the pure core emits nothing, so this shows
    // what an installed subscriber costs it.
    let compiled = workload::compile(&workload::tenant(10));
    let mut group = c.benchmark_group("evaluate_traced");
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    group.bench_function("agent_10_policies/ordinary_purchase", |b| {
        b.iter(|| {
            bursar::policy::evaluate(
                black_box(&compiled),
                black_box(&ordinary.request),
                black_box(&ordinary.facts),
            )
        })
    });
    drop(guard);
    group.finish();

    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    let tenant = workload::tenant(10_000);
    group.bench_function("tenant_10000_policies", |b| {
        b.iter(|| workload::compile(black_box(&tenant)))
    });
    group.finish();
}

criterion_group!(benches, evaluation);
criterion_main!(benches);
