// METEOR 1.5 scoring on several threads in one JVM (lora-repro, experiments/metrics/java.py).
//
// The METEOR jar's -stdio mode scores one segment at a time and first loads the whole English
// paraphrase table (5.3M entries, most of a cold call). This driver:
//  - loads only the paraphrase entries a batch can use: an entry matches only where every word
//    of both its phrases occurs in the aligned lines, so entries with a word outside the batch's
//    vocabulary can never fire. The vocabulary holds every word the aligner sees (each line
//    normalised and lowercased as MeteorScorer does, split as Alignment does); the kept entries
//    stay in file order, so every alignment, statistic and score is the jar's own.
//    A later batch with words outside the vocabulary re-filters with the union.
//  - gives each worker thread its own MeteorScorer built with the jar's copy constructor (which
//    shares the loaded, read-only resources), and then does exactly what -stdio's SCORE and EVAL
//    commands do: per segment getMeteorStats(hyp, refs).toString(); then each statistics string
//    is parsed back, computeMetrics gives the segment score, and the parsed statistics are summed
//    for the corpus score.
//
// Protocol: prints READY at once. Then, per batch, reads a line with N and N lines
// "SCORE ||| ref1 ||| ... ||| refK ||| hyp" and prints, in input order, for each segment its
// statistics line and its score line, then the corpus score. Arguments: THREADS then the
// METEOR options (e.g. -l en -norm).
import edu.cmu.meteor.scorer.MeteorConfiguration;
import edu.cmu.meteor.scorer.MeteorScorer;
import edu.cmu.meteor.scorer.MeteorStats;
import edu.cmu.meteor.util.Constants;
import edu.cmu.meteor.util.Normalizer;

import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.File;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintStream;
import java.io.Writer;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.StringTokenizer;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

public class MeteorParallel {
    private final Properties props;
    private final URL fullTable;
    private final int langID;
    private final int normalization;
    private final Set<String> vocab = new HashSet<>();
    private File filtered;
    private MeteorScorer base;

    MeteorParallel(Properties props) {
        this.props = props;
        MeteorConfiguration config = new MeteorConfiguration(props);
        this.fullTable = config.getParaDirURL();
        this.langID = config.getLangID();
        this.normalization = config.getNormalization();
    }

    /** The words the aligner sees in `line`: MeteorScorer.getMeteorStats's normalisation and
     * lowercasing, then Alignment's tokenisation (the raw line's words are added too). */
    private void addWords(String line, Set<String> into) {
        String seen = line;
        if (normalization == Constants.NORMALIZE_KEEP_PUNCT || normalization == Constants.NORMALIZE_NO_PUNCT) {
            seen = Normalizer.normalizeLine(seen, langID, normalization == Constants.NORMALIZE_KEEP_PUNCT);
        }
        if (normalization != Constants.NO_NORMALIZE) {
            seen = seen.toLowerCase();
        }
        for (String text : new String[] {line, seen}) {
            StringTokenizer tok = new StringTokenizer(text);  // as Alignment.tokenize
            while (tok.hasMoreTokens()) {
                into.add(tok.nextToken());
            }
        }
    }

    private boolean allKnown(String phrase) {
        StringTokenizer tok = new StringTokenizer(phrase);  // as ParaphraseTransducer
        while (tok.hasMoreTokens()) {
            if (!vocab.contains(tok.nextToken())) {
                return false;
            }
        }
        return true;
    }

    /** A scorer whose paraphrase table holds every entry these segments can use. */
    MeteorScorer scorerFor(List<String[]> segments, ExecutorService pool) throws Exception {
        List<Future<Set<String>>> parts = new ArrayList<>();
        for (final String[] segment : segments) {  // normalising is most of it: on the workers
            parts.add(pool.submit(() -> {
                Set<String> mine = new HashSet<>();
                for (int j = 1; j < segment.length; j++) {
                    addWords(segment[j].trim(), mine);
                }
                return mine;
            }));
        }
        Set<String> words = new HashSet<>();
        for (Future<Set<String>> part : parts) {
            words.addAll(part.get());
        }
        if (base != null && vocab.containsAll(words)) {
            return base;
        }
        vocab.addAll(words);
        File out = File.createTempFile("meteor-paraphrase-", ".gz");
        out.deleteOnExit();
        // the table's layout, read as ParaphraseTransducer reads it: probability, phrase, paraphrase
        try (BufferedReader in = new BufferedReader(new InputStreamReader(
                 new GZIPInputStream(fullTable.openStream(), 1 << 16), StandardCharsets.UTF_8), 1 << 16);
             Writer w = new OutputStreamWriter(new GZIPOutputStream(
                 new BufferedOutputStream(new FileOutputStream(out), 1 << 16)), StandardCharsets.UTF_8)) {
            String prob;
            String lastPhrase = null;
            boolean lastKnown = false;
            while ((prob = in.readLine()) != null) {
                String phrase = in.readLine();
                String paraphrase = in.readLine();
                if (phrase == null || paraphrase == null) {
                    break;  // a truncated last entry: ParaphraseTransducer would fail on it too
                }
                if (!phrase.equals(lastPhrase)) {  // the table runs in blocks of one phrase
                    lastPhrase = phrase;
                    lastKnown = allKnown(phrase);
                }
                if (lastKnown && allKnown(paraphrase)) {
                    w.write(prob + "\n" + phrase + "\n" + paraphrase + "\n");
                }
            }
        }
        MeteorConfiguration config = new MeteorConfiguration(props);
        config.setParaFileURL(out.toURI().toURL());
        base = new MeteorScorer(config);
        if (filtered != null) {
            filtered.delete();
        }
        filtered = out;
        return base;
    }

    public static void main(String[] args) throws Exception {
        int threads = Integer.parseInt(args[0]);
        String[] meteorArgs = new String[args.length + 1];
        meteorArgs[0] = "-";
        meteorArgs[1] = "-";
        System.arraycopy(args, 1, meteorArgs, 2, args.length - 1);
        MeteorParallel driver = new MeteorParallel(Meteor.createPropertiesFromArgs(meteorArgs, 2));
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out), false, "UTF-8");
        out.println("READY");
        out.flush();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        // one scorer per worker thread and table: the copy shares the base's loaded resources
        final ThreadLocal<MeteorScorer[]> scorer = ThreadLocal.withInitial(() -> new MeteorScorer[2]);
        String line;
        while ((line = in.readLine()) != null) {
            int n = Integer.parseInt(line.trim());
            List<String[]> segments = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                segments.add(in.readLine().split("\\|\\|\\|"));  // as -stdio SCORE
            }
            final MeteorScorer base = driver.scorerFor(segments, pool);
            List<Future<String>> stats = new ArrayList<>();
            for (final String[] parts : segments) {
                stats.add(pool.submit(() -> {
                    MeteorScorer[] mine = scorer.get();
                    if (mine[0] != base) {
                        mine[0] = base;
                        mine[1] = new MeteorScorer(base);
                    }
                    ArrayList<String> refs = new ArrayList<>();
                    for (int j = 1; j < parts.length - 1; j++) {
                        refs.add(parts[j].trim());
                    }
                    return mine[1].getMeteorStats(parts[parts.length - 1].trim(), refs).toString();
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
