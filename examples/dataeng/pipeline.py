"""The data-engineering example written with the pipecast Python DSL (twin of pipeline.yaml)."""

from dataeng.steps import (
    audit,
    daily_revenue,
    enrich,
    extract_customers,
    extract_orders,
    notify,
    report,
    segment_sizes,
)

from pipecast.dsl import PIPELINE, Param, Retry, finally_, pipeline


@pipeline(
    name="daily-sales",
    description="Extract orders and customers, join them three ways, write a report.",
    schedule={"cron": "30 4 * * *", "timezone": "Europe/Berlin"},
    defaults={
        "image": "python:3.11-slim",
        "timeout": "5m",
        "retry": Retry(attempts=3, delay="10ms", backoff=2.0, max_delay="1s"),
        "resources": {"cpu": 0.5, "memory": "512Mi"},
        "env": {"TZ": "UTC"},
    },
)
def daily_sales(
    day: str = Param("2024-01-31", description="the business day to process"), customers: int = 60
):
    flaky_source = extract_orders.options(
        retry=Retry(attempts=5, delay="10ms", backoff=3.0, max_delay="2s", jitter=True)
    )
    orders = flaky_source(day=day, customers=customers)
    people = extract_customers(count=customers)

    revenue = daily_revenue(orders=orders.outputs.orders)
    enriched = enrich(orders=orders.outputs.orders, customers=people.outputs.customers)
    sizes = segment_sizes.options(cache=True)(customers=people.outputs.customers)

    checked = audit(orders_rows=orders.outputs.rows, customer_rows=people.outputs.rows)
    done = report(
        revenue=revenue.outputs.revenue,
        enriched=enriched.outputs.enriched,
        total=revenue.outputs.total,
        unmatched=enriched.outputs.unmatched,
        sizes=sizes.output,
    ).after(checked)

    finally_(notify, status=PIPELINE.status, run_id=PIPELINE.run_id)
    return {"summary": done.outputs.summary, "report": done.outputs.out}
