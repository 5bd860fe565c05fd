from serving.metrics import BUCKETS, Metrics


def test_counts_and_histogram_as_prometheus_reads_them():
    m = Metrics()
    route = "/v1/users/{user_id}/recommendations"
    for seconds in (BUCKETS[0], BUCKETS[0] * 1.01, 10.0):  # on a bound, just past it, past the last
        m.observe("GET", route, 200, seconds)
    m.observe("GET", route, 422, 0.0)
    m.count_served("cache", degraded=False)
    m.count_served("popular", degraded=True)
    m.count_served("popular", degraded=True)
    text = m.render()[0].decode()
    assert f'vidrec_http_requests_total{{method="GET",route="{route}",status="200"}} 3.0' in text
    assert f'vidrec_http_requests_total{{method="GET",route="{route}",status="422"}} 1.0' in text
    # cumulative buckets: le is inclusive
    assert f'vidrec_http_request_seconds_bucket{{le="{BUCKETS[0]}",route="{route}"}} 2.0' in text
    assert f'vidrec_http_request_seconds_bucket{{le="{BUCKETS[1]}",route="{route}"}} 3.0' in text
    assert f'vidrec_http_request_seconds_bucket{{le="{BUCKETS[-1]}",route="{route}"}} 3.0' in text
    assert f'vidrec_http_request_seconds_bucket{{le="+Inf",route="{route}"}} 4.0' in text
    assert f'vidrec_http_request_seconds_count{{route="{route}"}} 4.0' in text
    assert 'vidrec_served_lists_total{degraded="true",source="popular"} 2.0' in text
    assert "vidrec_redis_errors_total 0.0" in text
