// METEOR 1.5 scoring on several threads in one JVM (lora-repro, experiments/metrics/java.py).
//
// The METEOR jar's -stdio mode scores one segment at a time. This driver loads the scorer once
// (the ~6 s paraphrase-table load), gives each worker thread its own MeteorScorer built with the
// jar's copy constructor (which shares the loaded, read-only resources), and then does exactly
// what -stdio's SCORE and EVAL commands do: per segment getMeteorStats(hyp, refs).toString();
// then each statistics string is parsed back, computeMetrics gives the segment score, and the
// parsed statistics are summed for the corpus score. The numbers are the jar's own.
//
// Protocol: prints READY once loaded. Then, per batch, reads a line with N and N lines
// "SCORE ||| ref1 ||| ... ||| refK ||| hyp" and prints, in input order, for each segment its
// statistics line and its score line, then the corpus score. Arguments: THREADS then the
// METEOR options (e.g. -l en -norm).
import edu.cmu.meteor.scorer.MeteorConfiguration;
import edu.cmu.meteor.scorer.MeteorScorer;
import edu.cmu.meteor.scorer.MeteorStats;

import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class MeteorParallel {
    public static void main(String[] args) throws Exception {
        int threads = Integer.parseInt(args[0]);
        String[] meteorArgs = new String[args.length + 1];
        meteorArgs[0] = "-";
        meteorArgs[1] = "-";
        System.arraycopy(args, 1, meteorArgs, 2, args.length - 1);
        Properties props = Meteor.createPropertiesFromArgs(meteorArgs, 2);
        final MeteorScorer base = new MeteorScorer(new MeteorConfiguration(props));
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out), false, "UTF-8");
        out.println("READY");
        out.flush();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        final ThreadLocal<MeteorScorer> scorer = ThreadLocal.withInitial(() -> new MeteorScorer(base));
        String line;
        while ((line = in.readLine()) != null) {
            int n = Integer.parseInt(line.trim());
            List<Future<String>> stats = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                final String[] parts = in.readLine().split("\\|\\|\\|");  // as -stdio SCORE
                stats.add(pool.submit(() -> {
                    ArrayList<String> refs = new ArrayList<>();
                    for (int j = 1; j < parts.length - 1; j++) {
                        refs.add(parts[j].trim());
                    }
                    return scorer.get().getMeteorStats(parts[parts.length - 1].trim(), refs).toString();
                }));
            }
            MeteorStats total = new MeteorStats();  // as -stdio EVAL
            for (Future<String> future : stats) {
                String text = future.get();
                out.println(text);
                MeteorStats segment = new MeteorStats(text.trim());
                base.computeMetrics(segment);
                out.println(segment.score);
                total.addStats(segment);
            }
            base.computeMetrics(total);
            out.println(total.score);
            out.flush();
        }
        pool.shutdown();
    }
}
