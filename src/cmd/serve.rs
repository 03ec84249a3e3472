//! `memshim serve [--listen ADDR] TEMPLATE`.

use crate::error::Result;
use crate::present::view::ViewArgs;
use crate::serve::{self, template::Template, Service};

/// Serve the captures matching TEMPLATE over HTTP as pprof, for Parca and Pyroscope.
///
/// The newest state of each capture, where Parca and
/// Pyroscope (Grafana Alloy's pyroscope.scrape) scrape Go programs: /debug/pprof/heap and
/// /debug/pprof/allocs (all processes merged, or `?pid=N`), and an index page at /. Read-only,
/// GET only; only files matching the template are read.
#[derive(clap::Args)]
pub struct Args {
    /// The `%p` template the captures were written with (`memshim run -o`, MEMSHIM_OUTPUT),
    /// e.g. /tmp/caps/memshim.%p.msh.
    template: String,
    /// Address to listen on; loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:6060")]
    listen: String,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(args: Args) -> Result<()> {
    let template = Template::parse(&args.template)?;
    let server = serve::bind(&args.listen)?;
    let addr = server.server_addr().to_string();
    if let Some(ip) = server.server_addr().to_ip() {
        if !ip.ip().is_loopback() {
            eprintln!("memshim: note: serving on {ip}, not loopback: whoever reaches it reads the profiles");
        }
    }
    crate::capture::load::quiet_truncation();
    crate::cmd::output::print(&format!(
        "memshim: serving {} on http://{addr}/ (/debug/pprof/heap, /debug/pprof/allocs, ?pid=N)\n",
        template.describe()
    ))?;
    Service::new(template, args.view.view()).serve(&server);
    Ok(())
}
