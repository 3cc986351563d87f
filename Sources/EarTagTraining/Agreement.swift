// How closely a model follows a teacher on the same clips: the figures of a model card and of each epoch's
// evaluation (mAP and ROC-AUC against the teacher's binarized outputs, top-1 and top-5 agreement).

/// Agreement of one model's logits with a teacher's over the same clips.
public struct TeacherAgreement: Codable, Equatable, Sendable {
    /// Clips compared.
    public var clips: Int
    /// Mean average precision over classes against the teacher's hard targets (nil when no class has a positive).
    public var map: Double?
    /// Mean ROC-AUC over classes with both positives and negatives (nil when there is none).
    public var auc: Double?
    /// Fraction of clips whose top-1 class is the teacher's.
    public var top1: Double
    /// Fraction of clips whose model top-5 holds the teacher's top-1 class.
    public var top5: Double

    /// Compares `logits` with `teacherLogits` (both [clips][classes], row-major); `temperature` is T of
    /// sigmoid(teacher / T), which `teacherTargets` thresholds at 0.5. Invariant: equal, non-empty, whole rows.
    public static func measure(logits: [Float], teacherLogits: [Float], classes k: Int,
                               temperature: Double = 1) -> TeacherAgreement {
        precondition(k > 0 && !logits.isEmpty && logits.count == teacherLogits.count && logits.count % k == 0,
                     "agreement needs equal, whole rows")
        let n = logits.count / k
        var top1 = 0, top5 = 0
        for c in 0..<n {
            let row = logits[c * k..<(c + 1) * k]
            let best = argmax(teacherLogits[c * k..<(c + 1) * k])
            if argmax(row) == best { top1 += 1 }
            // The teacher's class is in the top 5 when fewer than 5 classes score strictly higher (ties favour it).
            let mine = row[row.startIndex + best]
            if row.lazy.filter({ $0 > mine }).count < 5 { top5 += 1 }
        }
        let targets = teacherTargets(teacherLogits, classes: k, temperature: temperature)
        let (map, auc) = meanAveragePrecisionAndAUC(scores: logits, targets: targets, classes: k)
        return TeacherAgreement(clips: n, map: map, auc: auc, top1: Double(top1) / Double(n),
                                top5: Double(top5) / Double(n))
    }

    /// Hard targets from teacher logits [clips][classes]: 1 where sigmoid(logit / T) >= 0.5, and always at the
    /// clip's top-1 class (so every clip has a positive), else 0.
    public static func teacherTargets(_ logits: [Float], classes k: Int, temperature: Double) -> [Float] {
        let p = DistillationLoss(labelWeight: 0, temperature: temperature).teacherProbabilities(logits)
        var out = p.map { $0 >= 0.5 ? Float(1) : 0 }
        for c in 0..<(logits.count / k) { out[c * k + argmax(logits[c * k..<(c + 1) * k])] = 1 }
        return out
    }
}
