use std::time::Instant;
fn main() {
    let prog = std::path::PathBuf::from("/tmp/ptools/noop/noop");
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        std::process::Command::new(&prog).status().unwrap();
    }
    println!("std status: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        std::process::Command::new(&prog).output().unwrap();
    }
    println!("std output: {:?}", t.elapsed() / n);
    let spec = gathm::runner::Spec::new(prog.clone(), vec![]);
    let c = gathm::runner::Cancel::new();
    let t = Instant::now();
    for _ in 0..n {
        gathm::runner::run(&spec, None, &c);
    }
    println!("runner::run: {:?}", t.elapsed() / n);
}
