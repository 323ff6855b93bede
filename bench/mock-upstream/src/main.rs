//! The mock upstream as a process, for `bench/overhead`.
//!
//! Usage: `mock-upstream [ADDR]` (default 127.0.0.1:0); prints `listening on http://ADDR`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    mock_upstream::serve(listener).await
}
